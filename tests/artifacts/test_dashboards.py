"""Dashboards: build, layout, datasources, units, and every query checked by real parsers.

PromQL is parsed by promql-parser and by the real promtool; LogQL and TraceQL are
checked for balanced syntax and for label/attribute names that exist.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.artifacts import dashboards, grafana_provisioning
from flobs.artifacts.dashboards.panels import DashboardSpec, View
from flobs.generate import render_tree
from flobs.inventory import load_fleet
from flobs.model import Fleet
from flobs.promql import BUILTIN_VALUES, grafana_variables, parse_error, substitute
from tests.conftest import EXAMPLE_INVENTORY, REPO, require_tool

UIDS = {"flobs-fleet", "flobs-host", "flobs-microvm"}
# Loki stream labels the shippers set (promtail.py/alloy): bounded ones only.
LOKI_LABELS = {"cluster", "host", "level", "component", "unit"}
# Structured metadata: allowed in label filters after the selector, never in it.
LOKI_METADATA = {"vmid", "trace_id", "span_id"}
# Span resource attributes the hosts' collectors set (otelcol.py).
TRACE_ATTRIBUTES = {"resource.host.name", "resource.flintlock.cluster", "resource.service.name"}
DOCS = REPO / "docs" / "dashboards.md"


def fleet_from(tmp_path: Path, central: dict[str, Any] | None = None) -> Fleet:
    doc = copy.deepcopy(yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8")))
    for key, value in (central or {}).items():
        doc["central"].setdefault(key, {}).update(value)
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    return load_fleet(path).fleet


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(EXAMPLE_INVENTORY).fleet


@pytest.fixture(scope="module")
def boards(fleet: Fleet) -> dict[str, dict[str, Any]]:
    files = dashboards.fleet_files(fleet)
    return {json.loads(v)["uid"]: json.loads(v) for v in files.values()}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels") or []


def targets(board: dict[str, Any], ds_type: str) -> Iterator[tuple[str, str]]:
    """(panel title, query) for every target of a datasource type."""
    for panel in panels(board):
        for target in panel.get("targets") or []:
            if target["datasource"]["type"] == ds_type:
                yield panel["title"], target.get("expr") or target.get("query") or ""


def test_every_dashboard_builds_with_stable_uid_tag_and_schema(
    boards: dict[str, dict[str, Any]], fleet: Fleet
) -> None:
    assert set(boards) == UIDS
    files = dashboards.fleet_files(fleet)
    assert set(files) == {f"grafana/dashboards/{uid}.json" for uid in UIDS}
    for uid, board in boards.items():
        assert "flobs" in board["tags"]
        assert board["schemaVersion"] >= 39  # Grafana 11's model
        assert board["title"].startswith("Flintlock / ")
        assert board["description"]
        assert "id" not in board or board["id"] is None, uid  # Grafana assigns ids


def test_output_is_deterministic_with_sorted_keys(fleet: Fleet) -> None:
    first, second = dashboards.fleet_files(fleet), dashboards.fleet_files(fleet)
    assert first == second
    for data in first.values():
        model = json.loads(data)
        assert (
            data.decode() == json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def test_variables(boards: dict[str, dict[str, Any]], fleet: Fleet) -> None:
    want = {
        "flobs-fleet": ["datasource", "cluster", "host", "group_by"],
        "flobs-host": ["datasource", "cluster", "host"],
        "flobs-microvm": ["datasource", "cluster", "host", "namespace", "name"],
    }
    for uid, board in boards.items():
        variables = board["templating"]["list"]
        assert [v["name"] for v in variables] == want[uid]
        ds = variables[0]
        assert ds["type"] == "datasource"
        assert ds["query"] == "prometheus"
        assert ds["current"]["value"] == fleet.central.grafana.prometheus.uid
        for var in variables[1:]:
            if var["name"] == "group_by":
                continue  # a custom variable (test_fleet_groups_hosts_by_inventory_labels)
            assert var["type"] == "query"
            assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    fleet_host = boards["flobs-fleet"]["templating"]["list"][2]
    assert fleet_host["multi"] and fleet_host["includeAll"]
    assert fleet_host["allValue"] == ".+"
    assert not boards["flobs-host"]["templating"]["list"][2].get("multi")


def test_every_panel_has_title_description_and_unit(boards: dict[str, dict[str, Any]]) -> None:
    count = 0
    for board in boards.values():
        for panel in panels(board):
            if panel["type"] == "row":
                assert panel["title"]
                continue
            count += 1
            assert panel["title"].strip(), panel
            assert len(panel["description"]) > 20, panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["targets"], panel["title"]
    assert count == sum(len(s.panels()) for s in dashboards.specs())


def test_panel_ids_unique_and_grid_without_overlap(boards: dict[str, dict[str, Any]]) -> None:
    for uid, board in boards.items():
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), uid
        placed: list[dict[str, int]] = []
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (uid, panel["title"])
            for o in placed:
                overlap = (
                    g["x"] < o["x"] + o["w"]
                    and o["x"] < g["x"] + g["w"]
                    and g["y"] < o["y"] + o["h"]
                    and o["y"] < g["y"] + g["h"]
                )
                assert not overlap, (uid, panel["title"])
            placed.append(g)


def test_datasources_resolve_to_the_provisioned_ones(tmp_path: Path) -> None:
    fleet = fleet_from(
        tmp_path,
        {
            "grafana": {
                "datasources": {
                    "prometheus": {"uid": "prom-eu1"},
                    "loki": {"uid": "logs-eu1"},
                    "tempo": {"uid": "traces-eu1"},
                }
            }
        },
    )
    provisioned = grafana_provisioning.datasources(fleet)["datasources"]
    uids = {d["type"]: d["uid"] for d in provisioned}
    assert uids == {"prometheus": "prom-eu1", "loki": "logs-eu1", "tempo": "traces-eu1"}
    seen: set[str] = set()
    for data in dashboards.fleet_files(fleet).values():
        board = json.loads(data)
        assert board["templating"]["list"][0]["current"]["value"] == "prom-eu1"
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            refs = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
            for ref in refs:
                seen.add(ref["type"])
                if ref["type"] == "prometheus":
                    assert ref["uid"] == "${datasource}"
                else:
                    assert ref["uid"] == uids[ref["type"]], panel["title"]
    assert seen == {"prometheus", "loki", "tempo"}


def test_promql_parses_with_promql_parser(boards: dict[str, dict[str, Any]]) -> None:
    n = 0
    for board in boards.values():
        for title, expr in targets(board, "prometheus"):
            n += 1
            assert grafana_variables(expr) <= {
                "cluster",
                "host",
                "namespace",
                "name",
                "group_by",
                *BUILTIN_VALUES,
            }, title
            assert parse_error(substitute(expr)) is None, (title, expr)
    assert n > 40


def _all_promql(boards: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for board in boards.values():
        out.extend((f"{board['uid']}: {t}", e) for t, e in targets(board, "prometheus"))
        for var in board["templating"]["list"][1:]:
            if var["type"] == "custom":
                continue  # group_by: label names, no query
            m = re.fullmatch(r"label_values\((.*), \w+\)", var["query"])
            assert m, var["query"]
            out.append((f"{board['uid']}: variable {var['name']}", m.group(1)))
    return out


@pytest.mark.tools
def test_promql_passes_promtool(boards: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    exprs = _all_promql(boards)
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"flobs_dashboard_check_{i}", "expr": substitute(expr)}
                    for i, (_, expr) in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboards-as-rules.yml"
    path.write_text(yamlio.dump(rules), encoding="utf-8")
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_firecracker_series_are_read_only_through_recording_rules(
    boards: dict[str, dict[str, Any]],
) -> None:
    for title, expr in _all_promql(boards):
        # Raw firecracker_* are per-flush deltas: no rate()/increase()/irate() and, in
        # fact, no raw use at all; `microvm:firecracker_*` are the hosts' rules.
        assert not re.search(r"(?<![:\w])firecracker_", expr), (title, expr)
        assert not re.search(r"\b(rate|irate|increase)\s*\(", expr), (title, expr)


def _balanced(text: str) -> bool:
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and not in_string


def test_balanced_checker_rejects_broken_queries() -> None:
    assert _balanced('{a="x"} |= "}"')
    for broken in ('{a="x"', 'sum(rate({a="x"}[5m])', '{a="x}', '{a="x"}]'):
        assert not _balanced(broken), broken


def test_logql_is_balanced_and_uses_only_real_labels(
    boards: dict[str, dict[str, Any]], fleet: Fleet
) -> None:
    inventory_labels = {k for h in fleet.hosts for k, _ in h.labels}
    n = 0
    for board in boards.values():
        for title, expr in targets(board, "loki"):
            n += 1
            concrete = substitute(expr, {"namespace": "default", "name": "vm-1"})
            assert _balanced(concrete), (title, expr)
            selectors = re.findall(r"\{([^{}]*)\}", concrete)
            assert selectors, (title, expr)
            for selector in selectors:
                matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', selector)
                assert matchers, (title, selector)
                names = {m[0] for m in matchers}
                assert names <= LOKI_LABELS | inventory_labels, (title, names)
                assert not names & LOKI_METADATA, (title, names)
                # Loki refuses selectors whose matchers can all match empty.
                assert any(op == "=" and value for _, op, value in matchers), (title, selector)
            # Label filters after the selector may use structured metadata.
            for name in re.findall(r"\|\s*(\w+)\s*(?:=~|!~|!=|=)", concrete):
                assert name in LOKI_LABELS | LOKI_METADATA | inventory_labels, (title, name)
            for duration in re.findall(r"\[([^\]]+)\]", concrete):
                assert re.fullmatch(r"\d+[smhd]", duration), (title, duration)
    assert n >= 4


def test_microvm_logs_filter_vmid_as_structured_metadata(
    boards: dict[str, dict[str, Any]],
) -> None:
    (query,) = [e for _, e in targets(boards["flobs-microvm"], "loki")]
    selector, _, pipeline = query.partition("}")
    assert "vmid" not in selector
    assert 'vmid=~"$namespace/$name/.*"' in pipeline


def test_traceql_is_balanced_and_uses_known_attributes(
    boards: dict[str, dict[str, Any]],
) -> None:
    queries = list(targets(boards["flobs-host"], "tempo"))
    assert len(queries) == 1
    for title, query in queries:
        assert _balanced(query), title
        assert query.strip().startswith("{") and query.strip().endswith("}")
        attributes = set(re.findall(r"((?:resource|span)\.[\w.]+)\s*(?:=|!=|=~|>|<)", query))
        assert attributes, query
        assert attributes <= TRACE_ATTRIBUTES, attributes


def test_thresholds_follow_the_inventory(tmp_path: Path) -> None:
    fleet = fleet_from(tmp_path, {"alerts": {"grpc_error_ratio": 0.125}})
    host = json.loads(dashboards.fleet_files(fleet)["grafana/dashboards/flobs-host.json"])
    (panel,) = [p for p in panels(host) if p["title"] == "gRPC server error ratio by method"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.125]


def test_remote_write_mode_counts_hosts_without_federation(tmp_path: Path) -> None:
    fleet = fleet_from(
        tmp_path,
        {
            "prometheus": {
                "mode": "remote_write",
                "remote_write": {"url": "https://m.example/api/v1/write"},
            }
        },
    )
    board = json.loads(dashboards.fleet_files(fleet)["grafana/dashboards/flobs-fleet.json"])
    exprs = " ".join(e for _, e in targets(board, "prometheus"))
    assert "federate" not in exprs
    assert 'up{job="prometheus", host!="", cluster="$cluster", host=~"$host"}' in exprs


def _labelled_fleet(tmp_path: Path, labels: list[dict[str, str]]) -> Fleet:
    doc: dict[str, Any] = {
        "apiVersion": "flobs/v1",
        "cluster": "c",
        "hosts": [
            {"name": f"h{i}", "address": f"10.0.0.{i}", "labels": host_labels}
            for i, host_labels in enumerate(labels, 1)
        ],
        "central": {
            "prometheus": {"url": "https://prom.c:9090"},
            "loki": {"url": "https://loki.c/loki/api/v1/push"},
            "traces": {"otlp_endpoint": "tempo.c:4317"},
            "grafana": {"url": "https://grafana.c"},
        },
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    return load_fleet(path).fleet


def _up_and_down(board: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    (panel,) = [p for p in panels(board) if p["title"].startswith("Hosts up and down")]
    return panel["title"], [(t["expr"], t["legendFormat"]) for t in panel["targets"]]


def test_fleet_groups_hosts_by_inventory_labels(tmp_path: Path) -> None:
    fleet = _labelled_fleet(
        tmp_path,
        [{"region": "eu", "rack": "r1"}, {"region": "eu", "rack": "r2"}, {"region": "us"}],
    )
    text = dashboards.fleet_files(fleet)["grafana/dashboards/flobs-fleet.json"].decode()
    assert re.findall(r"\w*zone\w*", text) == ["timezone"]  # Grafana's, not a label
    board = json.loads(text)
    (group_by,) = [v for v in board["templating"]["list"] if v["name"] == "group_by"]
    # region is on every host, rack on two: the most widely carried label comes first.
    assert group_by["type"] == "custom"
    assert group_by["query"] == "region,rack"
    assert [o["value"] for o in group_by["options"]] == ["region", "rack"]
    assert group_by["current"] == {"selected": True, "text": "region", "value": "region"}
    assert group_by["allowCustomValue"] is False
    up = 'up{job="federate", cluster="$cluster", host=~"$host"}'
    assert _up_and_down(board) == (
        "Hosts up and down by $group_by",
        [
            (f"sum by ($group_by) ({up})", "{{$group_by}} up"),
            (f"count by ($group_by) ({up} == 0)", "{{$group_by}} down"),
        ],
    )
    # What Grafana sends once the user picks rack (it substitutes legends too).
    _, queries = _up_and_down(board)
    assert [
        (substitute(e, {"group_by": "rack"}), substitute(lg, {"group_by": "rack"}))
        for e, lg in queries
    ] == [
        (f"sum by (rack) ({substitute(up)})", "{{rack}} up"),
        (f"count by (rack) ({substitute(up)} == 0)", "{{rack}} down"),
    ]


def test_fleet_without_host_labels_groups_by_cluster(tmp_path: Path) -> None:
    fleet = _labelled_fleet(tmp_path, [{}, {}])
    board = json.loads(dashboards.fleet_files(fleet)["grafana/dashboards/flobs-fleet.json"])
    (group_by,) = [v for v in board["templating"]["list"] if v["name"] == "group_by"]
    assert group_by["query"] == "cluster"
    assert group_by["current"] == {"selected": True, "text": "cluster", "value": "cluster"}
    assert _up_and_down(board)[0] == "Hosts up and down by $group_by"


def test_data_links_point_at_generated_dashboards(boards: dict[str, dict[str, Any]]) -> None:
    linked = set()
    for board in boards.values():
        for panel in panels(board):
            for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links") or []:
                m = re.match(r"/d/([\w-]+)\?", link["url"])
                assert m, link
                linked.add(m.group(1))
                for var in re.findall(r"var-(\w+)=", link["url"]):
                    target = boards[m.group(1)]["templating"]["list"]
                    assert var in {v["name"] for v in target}, (link["url"], var)
    assert linked == {"flobs-host", "flobs-microvm"}


def test_generated_tree_includes_dashboards(fleet: Fleet) -> None:
    tree = render_tree(fleet)
    for uid in UIDS:
        assert f"grafana/dashboards/{uid}.json" in tree


# --------------------------------------------------------------------------- docs


def test_markdown_table_lists_every_panel() -> None:
    text = dashboards.dashboards_markdown()
    specs: list[DashboardSpec] = dashboards.specs(View())
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    header_rows = [r for r in rows if r.startswith("| Row | Panel |")]
    assert len(header_rows) == len(specs)
    assert len(rows) - len(header_rows) == sum(len(s.panels()) for s in specs)
    for spec in specs:
        assert f"({spec.uid}" in text or f"(`{spec.uid}`)" in text
        for panel in spec.panels():
            assert f"| {panel.title.replace('|', chr(92) + '|')} |" in text


def test_docs_page_carries_the_current_table() -> None:
    """docs/dashboards.md embeds the generated table; FLOBS_UPDATE_DOCS=1 rewrites it."""
    begin, end = "<!-- BEGIN GENERATED: dashboards_markdown() -->", "<!-- END GENERATED -->"
    text = DOCS.read_text(encoding="utf-8")
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    want = f"{head}{begin}\n{dashboards.dashboards_markdown()}{end}{tail}"
    if os.environ.get("FLOBS_UPDATE_DOCS") == "1":
        DOCS.write_text(want, encoding="utf-8")
        return
    assert text == want, "docs/dashboards.md is stale: run with FLOBS_UPDATE_DOCS=1"


def test_hostile_names_come_back_unchanged(tmp_path: Path) -> None:
    doc = copy.deepcopy(yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8")))
    doc["cluster"] = 'eu"1 {{ x }} $HOME\\'
    doc["central"]["grafana"]["datasources"] = {"prometheus": {"name": 'prom "$x" {{y}}'}}
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    fleet = load_fleet(path).fleet
    for data in dashboards.fleet_files(fleet).values():
        variables = json.loads(data)["templating"]["list"]
        assert variables[0]["current"]["text"] == 'prom "$x" {{y}}'
        assert variables[1]["current"]["value"] == 'eu"1 {{ x }} $HOME\\'
