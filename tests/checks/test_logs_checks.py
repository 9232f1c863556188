"""Checks for promtail.yml / config.alloy: each fires on exactly its own corruption.

The trees are written from the three log/trace artifact modules only, so these
tests do not depend on the rest of the generator; ``test_generated_example_passes``
covers the full ``flobs generate`` output too.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.artifacts import alloy, otelcol, promtail
from flobs.checks import Check, CheckContext, all_checks
from flobs.checks.logs import (
    BOUNDED_FIELDS,
    BOUNDED_RELABEL_SOURCES,
    alloy_labels,
    promtail_labels,
)
from flobs.errors import ToolFailure
from flobs.model import Fleet
from flobs.problems import Problem, Severity
from tests.artifacts.test_promtail import example_doc, fleet_of, hostile_doc

OWN_PREFIXES = ("logs-", "otelcol-")


def optional_tool(*names: str) -> str:
    """The first of ``names`` on PATH, else skip.

    promtail, alloy and otelcol cannot be installed in this environment, so unlike
    ``require_tool`` this skips even under FLOBS_REQUIRE_TOOLS=1.
    """
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        f"OPTIONAL TOOL: none of {', '.join(names)} is on PATH (not installable "
        "here); flobs' own schema and semantic checks cover these files instead"
    )


def own_checks() -> list[type[Check]]:
    return [c for c in all_checks() if c.ID.startswith(OWN_PREFIXES)]


def write_tree(out: Path, fleet: Fleet) -> Path:
    for host in fleet.hosts:
        for module in (promtail, alloy, otelcol):
            for rel, data in module.host_files(fleet.host_scope, host).items():
                path = out / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    return out


def run(out: Path, fleet: Fleet | None, tools: Any = "off") -> list[Problem]:
    ctx = CheckContext(out, fleet, tools=tools)
    return [p for cls in own_checks() for p in cls().check(ctx)]


def run_one(out: Path, fleet: Fleet | None, check_id: str, tools: Any = "require") -> list[Problem]:
    (cls,) = [c for c in own_checks() if c.ID in (check_id,)]
    return list(cls().check(CheckContext(out, fleet, tools=tools)))


def ids(problems: Iterable[Problem]) -> set[str]:
    return {p.check_id for p in problems}


def full_featured_doc() -> dict[str, Any]:
    """The example plus every optional path: Alloy on journal, basic auth, logs via OTel."""
    doc = example_doc()
    doc["hosts"][4].setdefault("vars", {})["logs"] = {"agent": "alloy"}
    doc["hosts"][3].setdefault("vars", {})["logs"] = {"source": "file"}
    # Two hosts ship logs through the collector (and so run no Promtail/Alloy).
    for i in (0, 1):
        doc["hosts"][i].setdefault("vars", {})["otelcol"] = {"logs_pipeline": True}
    doc["central"]["loki"] = {
        "url": "https://loki.example/loki/api/v1/push",
        "tenant": "t",
        "basic_auth": {"username": "fl", "password_file": "/etc/pw"},
        "ca_file": "/ca.pem",
        "cert_file": "/c.pem",
        "key_file": "/c.key",
    }
    doc["central"]["traces"].update(
        {
            "basic_auth": {"username": "fl", "password_file": "/etc/tpw"},
            "headers_from_env": {"X-Scope-OrgID": "TENANT"},
            "ca_file": "/ca.pem",
        }
    )
    return doc


@pytest.fixture
def example_tree(tmp_path: Path) -> tuple[Path, Fleet]:
    fleet = fleet_of(example_doc())
    return write_tree(tmp_path / "out", fleet), fleet


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yamlio.load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yamlio.dump(data), encoding="utf-8")


# --------------------------------------------------------------------------- clean trees


@pytest.mark.parametrize("variant", ["example", "full", "hostile"])
def test_generated_trees_pass_every_log_and_trace_check(tmp_path: Path, variant: str) -> None:
    doc = {"example": example_doc, "full": full_featured_doc, "hostile": hostile_doc}[variant]()
    fleet = fleet_of(doc)
    out = write_tree(tmp_path / "out", fleet)
    shippers = len(list(out.rglob("promtail.yml"))) + len(list(out.rglob("config.alloy")))
    assert shippers == (4 if variant == "full" else 6)
    assert run(out, fleet) == []
    assert run(out, None) == []


def test_generated_example_passes(example_out: Path) -> None:
    """The real `flobs generate` tree of the example, with and without the inventory."""
    from flobs.inventory import load_fleet
    from tests.conftest import EXAMPLE_INVENTORY

    assert len(list(example_out.glob("hosts/*/otelcol.yaml"))) == 6
    assert run(example_out, load_fleet(EXAMPLE_INVENTORY).fleet) == []
    assert run(example_out, None) == []


def test_every_check_is_documented() -> None:
    checks = own_checks()
    assert len(checks) == 13
    for cls in checks:
        assert cls.__doc__ and len(cls.__doc__.strip()) > 40, cls.ID
        assert cls.TITLE


# --------------------------------------------------------------------------- label cardinality


def thousand_host_doc() -> dict[str, Any]:
    doc = example_doc()
    doc["hosts"] = [
        {
            "name": f"fl-{i:04d}",
            "address": f"10.{i // 250}.{i % 250}.1",
            "groups": [["eu1-a", "eu1-b", "cloud-hypervisor", "canary"][i % 4]],
            "labels": {"rack": f"r{i % 37:02d}", "serial": f"SN{i:06d}"},
            **(
                {"vars": {"logs": {"agent": "alloy", "source": ["journal", "file"][i % 2]}}}
                if i % 3 == 0
                else {}
            ),
        }
        for i in range(1000)
    ]
    return doc


@pytest.mark.parametrize("doc_factory", [example_doc, thousand_host_doc])
def test_no_loki_label_can_take_an_unbounded_value(doc_factory: Callable[[], Any]) -> None:
    """Labels are constants from the inventory, bounded logrus fields, or the pinned unit."""
    fleet = fleet_of(doc_factory())
    agents: dict[str, int] = {}
    for host in fleet.hosts:
        constants = {
            "cluster": fleet.cluster,
            "host": host.name,
            "service_name": promtail.SERVICE_NAME,
            **host.label_dict,
        }
        files = {
            **promtail.host_files(fleet.host_scope, host),
            **alloy.host_files(fleet.host_scope, host),
        }
        ((path, data),) = files.items()
        if path.endswith(".yml"):
            doc = yamlio.load(data.decode())
            sources = promtail_labels(doc)
            journal = doc["scrape_configs"][0].get("journal")
        else:
            blocks = alloy.parse(data.decode())
            sources = alloy_labels(blocks)
            journal = next((b.attrs for b in blocks if b.name == "loki.source.journal"), None)
        agents[path.rsplit("/", 1)[1]] = agents.get(path.rsplit("/", 1)[1], 0) + 1
        assert all(s.bounded for s in sources), (path, sources)
        for s in sources:
            if s.kind == "field":
                assert s.sources in (("level",), ("component",))
            elif s.kind == "relabel":
                # The unit label's only possible value is the one the journal match pins.
                assert s.sources == ("__journal__systemd_unit",)
                assert journal is not None
                assert journal["matches"] == f"_SYSTEMD_UNIT={host.vars.logs.unit}"
        names = {s.label for s in sources}
        assert names == set(constants) | {"level", "component"} | (
            {"unit"} if host.vars.logs.source == "journal" else set()
        )
        # Constant labels really are the inventory's values for this host.
        assert {s.label for s in sources if s.kind == "constant"} == set(constants)
    assert sum(agents.values()) == len(fleet.hosts)
    if len(fleet.hosts) == 1000:
        assert agents == {"config.alloy": 334, "promtail.yml": 666}


def test_the_generator_only_labels_what_the_check_calls_bounded() -> None:
    assert promtail.JOURNAL_UNIT_LABEL in BOUNDED_RELABEL_SOURCES
    assert set(promtail.LABEL_FIELDS) <= BOUNDED_FIELDS
    assert not set(promtail.METADATA_FIELDS) & BOUNDED_FIELDS


# ------------------------------------------------------------------ one corruption per check


def only(problems: list[Problem], check_id: str) -> list[Problem]:
    assert ids(problems) == {check_id}, [p.render() for p in problems]
    return problems


def test_schema_check_fires_on_an_unknown_key(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    path = out / "hosts/fl-eu1-a-02/promtail.yml"
    edit_yaml(path, lambda d: d["server"].update({"http_listen_pot": 9080}))
    (problem,) = only(run(out, fleet), "logs-schema")
    assert problem.file == "hosts/fl-eu1-a-02/promtail.yml"
    assert "http_listen_pot" in problem.message
    assert problem.line is not None


def test_label_check_fires_on_a_vmid_label_in_promtail(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    path = out / "hosts/fl-eu1-a-01/promtail.yml"
    edit_yaml(
        path,
        lambda d: d["scrape_configs"][0]["pipeline_stages"][2]["labels"].update({"vmid": None}),
    )
    (problem,) = only(run(out, fleet), "logs-label-cardinality")
    assert "vmid is unbounded" in problem.message
    assert problem.key_path == "$.scrape_configs[0].pipeline_stages[2].labels.vmid"
    assert problem.line is not None


def test_label_check_fires_on_a_relabelled_journal_field(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    path = out / "hosts/fl-eu1-a-01/promtail.yml"
    edit_yaml(
        path,
        lambda d: d["scrape_configs"][0]["relabel_configs"].append(
            {"source_labels": ["__journal__pid"], "target_label": "pid"}
        ),
    )
    (problem,) = only(run(out, fleet), "logs-label-cardinality")
    assert "`pid`" in problem.message


def test_label_check_fires_on_a_trace_id_label_in_alloy(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    path = out / "hosts/fl-eu1-b-03/config.alloy"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            '      "component" = "",\n', '      "component" = "",\n      "tid" = "trace_id",\n'
        )
    )
    (problem,) = only(run(out, fleet), "logs-label-cardinality")
    assert "`tid` takes its value from trace_id" in problem.message
    assert problem.line is not None


def test_alloy_syntax_check(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    path = out / "hosts/fl-eu1-b-03/config.alloy"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('tenant_id = "flintlock-eu1"', 'tenant_id = "flintlock-eu1'))
    (problem,) = only(run(out, fleet), "logs-alloy-syntax")
    assert problem.line == text.splitlines().index('    tenant_id = "flintlock-eu1"') + 1


def test_alloy_reference_check(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    path = out / "hosts/fl-eu1-b-03/config.alloy"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            "forward_to = [loki.write.central.receiver]",
            "forward_to = [loki.write.centre.receiver]",
        )
    )
    problems = only(run(out, fleet), "logs-alloy-references")
    assert sorted(p.message for p in problems) == [
        "loki.process.flintlockd references loki.write.centre.receiver, but no "
        "loki.write.centre is defined",
        "loki.write.central is defined but never used",
    ]


def test_loopback_check(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    path = out / "hosts/fl-eu1-a-01/promtail.yml"
    edit_yaml(path, lambda d: d["server"].update({"http_listen_address": "0.0.0.0"}))
    (problem,) = only(run(out, fleet), "logs-listen-loopback")
    assert problem.severity is Severity.ERROR
    assert "0.0.0.0" in problem.message
    (without_inventory,) = only(run(out, None), "logs-listen-loopback")
    assert without_inventory.severity is Severity.WARNING
    # An inventory that allows it: no finding.
    doc = example_doc()
    doc["hosts"][0]["vars"] = {"logs": {"allow_public": True}}
    assert run(out, fleet_of(doc)) == []


# --------------------------------------------------------------------------- real tools


def fake_tool(bin_dir: Path, name: str, fails_on: str) -> None:
    """A stand-in that fails, printing a message, when its last argument contains ``fails_on``."""
    script = bin_dir / name
    script.write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"
        # Shell built-ins only: PATH holds nothing but this directory.
        'while IFS= read -r line; do case "$line" in\n'
        f'  *{fails_on}*) echo "{name}: bad config in $last" >&2; exit 1;;\n'
        'esac; done < "$last"\n'
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("check_id", "tool", "target", "marker"),
    [
        ("logs-promtail-tool", "promtail", "hosts/fl-eu1-a-01/promtail.yml", "http_listen_port"),
        ("logs-alloy-tool", "alloy", "hosts/fl-eu1-b-03/config.alloy", "loki.write"),
        ("otelcol-tool", "otelcol-contrib", "hosts/fl-eu1-a-01/otelcol.yaml", "memory_limiter"),
    ],
)
def test_tool_checks_report_the_tools_output(
    example_tree: tuple[Path, Fleet],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    check_id: str,
    tool: str,
    target: str,
    marker: str,
) -> None:
    out, fleet = example_tree
    (cls,) = [c for c in own_checks() if check_id == c.ID]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FLOBS_TOOLS_PATH", "")  # nor the checkout's .tools/bin
    # Missing tool: silent in auto mode, an error when tools are required.
    assert list(cls().check(CheckContext(out, fleet, tools="auto"))) == []
    with pytest.raises(ToolFailure, match="not on PATH"):
        list(cls().check(CheckContext(out, fleet, tools="require")))
    # Present: the one file containing the marker fails, with the tool's own words.
    fake_tool(bin_dir, tool, marker.upper())
    assert list(cls().check(CheckContext(out, fleet, tools="auto"))) == []
    assert list(cls().check(CheckContext(out, fleet, tools="off"))) == []
    path = out / target
    path.write_text(path.read_text(encoding="utf-8").replace(marker, marker.upper()))
    (problem,) = cls().check(CheckContext(out, fleet, tools="auto"))
    assert problem.file == target
    assert "exited 1" in problem.message
    assert f"{tool}: bad config in {out / target}" in problem.message
    # A tool that dies from a signal gives no verdict: exit 3, not a finding.
    (bin_dir / tool).write_text("#!/bin/sh\nkill -SEGV $$\n")
    with pytest.raises(ToolFailure) as crash:
        list(cls().check(CheckContext(out, fleet, tools="auto")))
    assert crash.value.returncode == -11


def test_real_promtail_accepts_the_example(example_tree: tuple[Path, Fleet]) -> None:
    optional_tool("promtail")
    out, fleet = example_tree
    assert run_one(out, fleet, "logs-promtail-tool") == []


def test_real_alloy_accepts_the_example(example_tree: tuple[Path, Fleet]) -> None:
    optional_tool("alloy")
    out, fleet = example_tree
    assert run_one(out, fleet, "logs-alloy-tool") == []


def test_tools_are_not_needed_when_off(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    env_path = os.environ.get("PATH", "")
    assert run(out, fleet, tools="off") == []
    assert os.environ.get("PATH", "") == env_path
