"""validate's contract for the file kinds added last: findings, never crashes; reports
that count what each check really read; unrun tools shown as skipped; a stale tree
named when the inventory changed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from flobs.report import render
from tests.checks.conftest import Run, fired, rehash
from tests.conftest import EXAMPLE_INVENTORY

PROMTAIL = "hosts/fl-eu1-a-01/promtail.yml"


def test_promtail_clients_as_a_string_list_is_a_finding(tree: Path, run: Run) -> None:
    (tree / PROMTAIL).write_text("clients: [a-string]\nscrape_configs: 3\n")
    rehash(tree)
    result = run(tree)  # crashed with exit 3 (AttributeError) before
    assert "logs-schema" in fired(result)
    assert {(p.file, p.line, p.col) for p in result.problems if p.check_id == "logs-schema"} >= {
        (PROMTAIL, 1, 11)
    }


def test_odd_template_variable_does_not_hide_a_closure_gap(tree: Path, run: Run) -> None:
    path = tree / "grafana/dashboards/flobs-fleet.json"
    board = json.loads(path.read_text())
    # Schema-valid, but not the shape flobs writes: the closure used to give up on it
    # (a note on stderr) and the real gap below went unreported, exit 0.
    board["templating"]["list"].append(
        {
            "name": "odd",
            "type": "query",
            "datasource": {"type": "prometheus"},
            "query": {"query": 5},
        }
    )
    board["panels"][1]["targets"][0]["expr"] = "sum(flobs_nobody_produces_this_total)"
    path.write_text(json.dumps(board, indent=2))
    rehash(tree)
    result = run(tree)
    gaps = sorted((p.file, p.message) for p in result.problems if p.check_id == "xref-closure")
    assert gaps == [
        (
            "grafana/dashboards/flobs-fleet.json",
            "flobs_nobody_produces_this_total is not federated (read by panel 'Hosts up')",
        ),
        (
            "grafana/dashboards/flobs-fleet.json",
            "flobs_nobody_produces_this_total is not produced (read by panel 'Hosts up')",
        ),
    ]
    assert result.failed
    assert not [n for n in result.notes if "xref-closure" in n]


def test_reports_count_the_files_each_check_read(tree: Path, run: Run) -> None:
    result = run(tree, tools="off")
    report = json.loads(render(result, "json", base="out"))
    files = {c["id"]: c["files"] for c in report["checks"]}
    kinds = {
        "promtail.yml": len(list(tree.glob("hosts/*/promtail.yml"))),
        "config.alloy": len(list(tree.glob("hosts/*/config.alloy"))),
        "otelcol.yaml": len(list(tree.glob("hosts/*/otelcol.yaml"))),
    }
    assert kinds == {"promtail.yml": 5, "config.alloy": 1, "otelcol.yaml": 6}
    assert {k: v for k, v in files.items() if k.startswith(("logs-", "otelcol-"))} == {
        "logs-alloy-references": 1,
        "logs-alloy-syntax": 1,
        "logs-alloy-tool": 0,
        "logs-label-cardinality": 6,
        "logs-listen-loopback": 5,
        "logs-promtail-tool": 0,
        "logs-schema": 5,
        "otelcol-loopback": 6,
        "otelcol-processor-order": 6,
        "otelcol-references": 6,
        "otelcol-schema": 6,
        "otelcol-tool": 0,
        "otelcol-unused": 6,
    }


def test_tools_that_did_not_run_are_skipped_not_passed(tree: Path, run: Run) -> None:
    result = run(tree, tools="off")
    report = json.loads(render(result, "json", base="out"))
    skipped = {c["id"]: c["skipped"] for c in report["checks"] if "skipped" in c}
    assert skipped == {
        "amtool-config": "--tools off: amtool was not run",
        "amtool-routes": "--tools off: amtool was not run",
        "logs-alloy-tool": "--tools off: alloy was not run",
        "logs-promtail-tool": "--tools off: promtail was not run",
        "otelcol-tool": "--tools off: otelcol was not run",
        "promtool-config": "--tools off: promtool was not run",
        "promtool-rules": "--tools off: promtool was not run",
        "promtool-test": "--tools off: promtool was not run",
    }
    assert report["summary"]["checks"] == len(report["checks"]) - 8
    junit = ET.fromstring(render(result, "junit", base="out"))  # noqa: S314 - our own output
    suites = {s.get("name"): s for s in junit.iter("testsuite")}
    for check_id, reason in skipped.items():
        (case,) = list(suites[check_id])
        assert (case.get("name"), case.find("skipped").get("message")) == ("(skipped)", reason)  # type: ignore[union-attr]
    assert junit.get("skipped") == "8"
    assert render(result, "text").endswith(
        f"({len(report['checks']) - 8} checks over {result.files} files, 8 skipped)\n"
    )


def test_checks_needing_the_inventory_are_skipped_without_it(tree: Path, run: Run) -> None:
    result = run(tree, inventory=None)
    skipped = {c.id: c.skipped for c in result.checks if c.skipped}
    assert skipped["xref-hosts"] == "needs -i INVENTORY"
    assert skipped["manifest-inventory"] == "needs -i INVENTORY"


def test_a_changed_inventory_makes_the_tree_stale(tree: Path, run: Run, tmp_path: Path) -> None:
    changed = tmp_path / "inventory.yaml"
    changed.write_text(EXAMPLE_INVENTORY.read_text() + "# a comment is a change too\n")
    result = run(tree, inventory=changed)
    assert [(p.file, p.check_id, p.key_path, p.message) for p in result.problems] == [
        (
            "manifest.json",
            "manifest-inventory",
            "$.inventory.sha256",
            "the tree is stale: it was generated from another version of the inventory "
            "(its sha256 differs from the one in manifest.json)",
        )
    ]
    assert result.failed
    assert not run(tree).failed
