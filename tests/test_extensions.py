"""Extension points: extra scrape jobs, user rules + tests, user dashboards, overrides.

The example ``examples/extensions/inventory.yaml`` has two extra jobs (one for every
host, one for the `edge` group), one rules file with promtool tests, one dashboard and
three overrides (a panel title, a disabled panel, an alert's `for`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.closure import closure_gaps
from flobs.errors import InputError
from flobs.generate import generate
from flobs.inventory import load_fleet_text
from tests.conftest import REPO, require_major, require_tool
from tests.helpers import run_flobs

EXAMPLE = REPO / "examples" / "extensions" / "inventory.yaml"


@pytest.fixture(scope="module")
def ext_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ext") / "out"
    generate(EXAMPLE, out)
    return out


def _yaml(path: Path) -> Any:
    return yamlio.load(path.read_text(encoding="utf-8"))


def _jobs(out: Path, host: str) -> dict[str, dict[str, Any]]:
    doc = _yaml(out / "hosts" / host / "prometheus.yml")
    return {job["job_name"]: job for job in doc["scrape_configs"]}


def test_extra_jobs_merge_by_precedence_and_get_limits(ext_out: Path) -> None:
    lab1, lab2 = _jobs(ext_out, "lab-01"), _jobs(ext_out, "lab-02")
    assert list(lab1)[-2:] == ["smartctl", "storage-agent"]  # after flobs' jobs
    assert "smartctl" not in lab2 and list(lab2)[-1] == "storage-agent"
    assert lab1["storage-agent"] == {
        "job_name": "storage-agent",
        "label_limit": 40,
        "label_name_length_limit": 128,
        "label_value_length_limit": 1024,
        "sample_limit": 2000,  # the user's own limit wins
        "static_configs": [{"targets": ["127.0.0.1:9500"]}],
        "keep_dropped_targets": 100,  # flobs adds it for every job on Prometheus >= 2.47
    }
    assert lab1["smartctl"]["sample_limit"] == 10000  # flobs' default limit
    assert lab1["smartctl"]["scrape_interval"] == "60s"


def test_extra_jobs_reach_the_centre_by_federation(ext_out: Path) -> None:
    central = _yaml(ext_out / "central" / "prometheus.yml")
    match = central["scrape_configs"][0]["params"]["match[]"]
    assert match[-2:] == [
        '{__name__=~"smartctl_device_.+",job="smartctl"}',
        '{__name__=~"storage_agent_requests_total",job="storage-agent"}',
    ]


def test_extra_jobs_reach_the_centre_by_remote_write() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "    listen: 0.0.0.0:9090\n",
        "    listen: 0.0.0.0:9090\n    mode: remote_write\n"
        "    url: http://127.0.0.1:8428\n"
        "    remote_write: {url: http://127.0.0.1:8428/api/v1/write}\n",
    )
    fleet = load_fleet_text(text.encode(), "inv.yaml", base_dir=EXAMPLE.parent).fleet
    from flobs.artifacts.prometheus_local import config

    keep = config(fleet.host_scope, fleet.host("lab-01"))["remote_write"][0][
        "write_relabel_configs"
    ][0]
    assert keep["action"] == "keep"
    assert keep["regex"].endswith("|smartctl_device_.+|storage_agent_requests_total")


def test_user_files_are_copied_and_marked_in_the_manifest(ext_out: Path) -> None:
    rules = (EXAMPLE.parent / "rules" / "storage.yml").read_bytes()
    assert (ext_out / "central/rules/user-storage.yml").read_bytes() == rules  # comments kept
    test = _yaml(ext_out / "central/tests/user-storage.test.yml")
    assert test["rule_files"] == ["../rules/user-storage.yml"]
    assert [t["name"] for t in test["tests"]] == ["idle agent fires", "busy agent stays quiet"]
    dash = json.loads((ext_out / "grafana/dashboards/lab-storage.json").read_text())
    assert dash["uid"] == "lab-storage" and dash["title"] == "Lab / Storage agent"
    manifest = json.loads((ext_out / "manifest.json").read_text())
    assert manifest["user_files"] == {
        "central/rules/user-storage.yml": {
            "origin": "user",
            "kind": "rules",
            "source": "rules/storage.yml",
        },
        "central/tests/user-storage.test.yml": {
            "origin": "user",
            "kind": "rules-test",
            "source": "rules/storage.test.yml",
        },
        "grafana/dashboards/lab-storage.json": {
            "origin": "user",
            "kind": "dashboard",
            "source": "dashboards/storage.json",
        },
    }
    assert manifest["extra_jobs"] == {
        "smartctl": ["smartctl_device_.+"],
        "storage-agent": ["storage_agent_requests_total"],
    }
    for path in manifest["user_files"]:
        assert path in manifest["files"]  # hashed like every file: hand edits show


def test_panel_overrides(ext_out: Path) -> None:
    fleet = json.loads((ext_out / "grafana/dashboards/flobs-fleet.json").read_text())
    titles = [p["title"] for p in fleet["panels"]]
    assert "Unreachable hosts" in titles
    assert "Hosts down" not in titles
    assert "Highest load per CPU" not in titles
    # The row that lost a panel still fills whole grid lines (the last panel widened).
    row = [p for p in fleet["panels"] if p["gridPos"]["y"] == _row_y(fleet, "Host pressure")]
    assert sum(p["gridPos"]["w"] for p in row if p["type"] != "row") % 24 == 0


def _row_y(dashboard: dict[str, Any], title: str) -> int:
    panels = dashboard["panels"]
    i = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == title)
    return int(panels[i + 1]["gridPos"]["y"]) if i + 1 < len(panels) else -1


def test_threshold_override_moves_the_red_step(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "        Highest load per CPU: {disable: true}\n",
        "        Highest load per CPU: {disable: true}\n"
        "        gRPC server error ratio by method: {threshold: 0.2}\n",
    )
    fleet = load_fleet_text(text.encode(), "inv.yaml", base_dir=EXAMPLE.parent).fleet
    from flobs.artifacts.dashboards import dashboards

    board = dashboards(fleet)["flobs-fleet"]
    panel = next(p for p in board["panels"] if p["title"] == "gRPC server error ratio by method")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 0.2}


def test_alert_threshold_override_moves_alert_and_red_line() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "      FlobsHostDown: {for: 10m}\n",
        "      FlobsHostDown: {for: 10m}\n      FlintlockdGrpcErrors: {threshold: 0.25}\n",
    )
    fleet = load_fleet_text(text.encode(), "inv.yaml", base_dir=EXAMPLE.parent).fleet
    from flobs.artifacts.central_rules import alert_rules
    from flobs.artifacts.dashboards import dashboards

    rule = next(
        r for r in alert_rules(fleet)["groups"][0]["rules"] if r["alert"] == "FlintlockdGrpcErrors"
    )
    assert rule["expr"].endswith("> 0.25")
    board = dashboards(fleet)["flobs-fleet"]
    panel = next(p for p in board["panels"] if p["title"] == "gRPC server error ratio by method")
    assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 0.25


def test_alert_overrides(ext_out: Path) -> None:
    rules = _yaml(ext_out / "central/rules/flobs-alerts.yml")["groups"][0]["rules"]
    by_name = {r["alert"]: r for r in rules}
    assert by_name["FlobsHostDown"]["for"] == "10m"
    assert by_name["FlobsHostsMissing"]["for"] == "5m"  # central.alerts default untouched


def test_disabled_alert_loses_its_tests_too() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "      FlobsHostDown: {for: 10m}\n",
        "      FlobsHostDown: {for: 10m}\n"
        "      FirecrackerVmmPanic: {disable: true, severity: x}\n",
    )
    with pytest.raises(InputError) as info:
        load_fleet_text(text.encode(), "inv.yaml", base_dir=EXAMPLE.parent)
    assert [p.key_path for p in info.value.problems] == [
        "$.extensions.overrides.alerts.FirecrackerVmmPanic.severity"
    ]
    text = text.replace("severity: x", "severity: info")
    fleet = load_fleet_text(text.encode(), "inv.yaml", base_dir=EXAMPLE.parent).fleet
    from flobs.artifacts.central_rules import alert_rules, unit_tests

    names = [r["alert"] for r in alert_rules(fleet)["groups"][0]["rules"]]
    assert "FirecrackerVmmPanic" not in names and "FlobsHostDown" in names
    tested = {
        a["alertname"] for t in unit_tests(fleet)["tests"] for a in t.get("alert_rule_test", [])
    }
    assert "FirecrackerVmmPanic" not in tested and "FlobsHostDown" in tested


def test_closure_knows_what_extra_jobs_produce(ext_out: Path) -> None:
    tree = {
        p.relative_to(ext_out).as_posix(): p.read_bytes() for p in ext_out.rglob("*") if p.is_file()
    }
    assert closure_gaps(tree) == []
    manifest = json.loads(tree["manifest.json"])
    del manifest["extra_jobs"]
    tree["manifest.json"] = json.dumps(manifest).encode()
    gaps = {(g.file, g.metric, g.reason) for g in closure_gaps(tree)}
    assert gaps == {
        ("central/rules/user-storage.yml", "storage_agent_requests_total", "not produced")
    }


def test_validate_strict_passes_with_promtool(ext_out: Path) -> None:
    require_tool("promtool")
    result = run_flobs("validate", ext_out, "-i", EXAMPLE, "--strict", "--tools", "auto")
    assert (result.code, result.stdout.splitlines()[-1]) == (
        0,
        # promtail and alloy are not installed here: their checks are skipped, not passed.
        "0 errors, 0 warnings (37 checks over 43 files, 2 skipped)",
    ), result.stdout + result.stderr


def _for_prometheus_2(tmp_path: Path) -> Path:
    """examples/extensions for hosts and a centre on Debian's Prometheus 2.42."""
    shutil.copytree(EXAMPLE.parent, tmp_path / "inv")
    inv = tmp_path / "inv" / "inventory.yaml"
    text = inv.read_text(encoding="utf-8")
    text = text.replace(
        "  local_prometheus:\n    listen: 0.0.0.0:9091\n",
        '  local_prometheus:\n    listen: 0.0.0.0:9091\n    version: "2.42"\n',
    ).replace("    listen: 0.0.0.0:9090\n", '    listen: 0.0.0.0:9090\n    version: "2.42"\n')
    inv.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    generate(inv, out)
    return out


@pytest.mark.parametrize("major", [2, 3])
def test_promtool_2_and_3_accept_the_tree(ext_out: Path, tmp_path: Path, major: int) -> None:
    promtool = require_major("promtool", major)
    out = ext_out if major == 3 else _for_prometheus_2(tmp_path)  # 3.x is the default
    configs = sorted(str(p) for p in out.glob("hosts/*/prometheus.yml"))
    check = subprocess.run(
        [promtool, "check", "config", *configs, str(out / "central/prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tests = sorted(str(p.relative_to(out)) for p in out.glob("central/tests/*.yml"))
    run = subprocess.run(
        [promtool, "test", "rules", *tests],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "central/tests/user-storage.test.yml\n  SUCCESS" in run.stdout


def test_bad_extension_input_writes_nothing(tmp_path: Path) -> None:
    case = REPO / "tests" / "cases" / "extension-rules-unparsable" / "inventory.yaml"
    out = tmp_path / "out"
    result = run_flobs("generate", "-i", case, "-o", out)
    assert result.code == 2
    assert "rules/broken.yml:6:8: invalid YAML" in result.stderr
    assert not out.exists()
