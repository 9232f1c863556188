"""Central alert/recording rules: promtool accepts them and their generated unit tests pass.

The generated ``central/tests/*.yml`` are run with the real promtool, for the
example (federation), a remote_write variant and non-default thresholds; a
mutated rule must make them fail, so the tests prove something.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.artifacts import central_rules, prometheus_local
from flobs.artifacts.series import CENTRAL_JOB_PRODUCES
from flobs.inventory import load_fleet
from flobs.model import Fleet
from flobs.promql import metric_names, parse_error
from flobs.promtime import seconds
from tests.conftest import EXAMPLE_INVENTORY, REPO, require_tool


def fleet_from(tmp_path: Path, change: dict[str, Any] | None = None) -> Fleet:
    """The example fleet with ``change`` merged into its ``central`` section."""
    doc = yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    for key, value in (change or {}).items():
        doc["central"].setdefault(key, {}).update(value)
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    return load_fleet(path).fleet


def write_central(fleet: Fleet, out: Path) -> Path:
    for rel, data in central_rules.fleet_files(fleet).items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out / "central"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = require_tool("promtool")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def load(path: Path) -> Any:
    return yamlio.load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def example_fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return load_fleet(EXAMPLE_INVENTORY).fleet


REMOTE_WRITE = {
    "prometheus": {
        "mode": "remote_write",
        "remote_write": {"url": "https://metrics.example/api/v1/write"},
    }
}
CUSTOM_ALERTS = {
    "alerts": {
        "grpc_error_ratio": 0.2,
        "grpc_error_for": "3m",
        "flintlockd_restarts_threshold": 5,
        "flintlockd_restarts_window": "30m",
        "vmm_panic_for": "2m",
        "host_down_for": "1m",
        "firecracker_stale_after": "10m",
        "firecracker_stale_for": "2m",
        "agent_down_for": "20m",
        "flintlockd_down_for": "90s",
    }
}


@pytest.mark.tools
@pytest.mark.parametrize(
    "change",
    [None, REMOTE_WRITE, CUSTOM_ALERTS],
    ids=["federation", "remote-write", "custom-thresholds"],
)
def test_promtool_checks_and_unit_tests_pass(tmp_path: Path, change: dict[str, Any] | None) -> None:
    central = write_central(fleet_from(tmp_path, change), tmp_path / "out")
    check = promtool(
        "check", "rules", "rules/flobs-alerts.yml", "rules/flobs-recording.yml", cwd=central
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # Run from elsewhere: rule_files are relative to the test file, not the cwd.
    test = promtool("test", "rules", str(central / "tests" / "flobs-alerts.test.yml"), cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


@pytest.mark.tools
@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [
        (r'== 0"', '== 1"'),  # every `up == 0` alert inverted
        (r"> 0\.05", "> 0.5"),  # gRPC threshold not the inventory's
        (r'>= 3"', '>= 30"'),  # restart threshold not the inventory's
        (r"\[5m\]\) == 0 and", "[5m]) == 1 and"),  # staleness inverted
    ],
)
def test_unit_tests_catch_a_broken_rule(
    tmp_path: Path, example_fleet: Fleet, pattern: str, replacement: str
) -> None:
    central = write_central(example_fleet, tmp_path)
    rules = central / "rules" / "flobs-alerts.yml"
    text, n = re.subn(pattern, replacement, rules.read_text(encoding="utf-8"))
    assert n >= 1
    rules.write_text(text, encoding="utf-8")
    result = promtool("test", "rules", "tests/flobs-alerts.test.yml", cwd=central)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_has_labels_annotations_and_a_runbook(
    example_fleet: Fleet, tmp_path: Path
) -> None:
    central = write_central(example_fleet, tmp_path)
    groups = load(central / "rules" / "flobs-alerts.yml")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    base = example_fleet.central.runbook_base_url
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"] == f"{base}/{rule['alert']}.md"
        runbook = REPO / "docs" / "runbooks" / f"{rule['alert']}.md"
        assert runbook.is_file(), f"missing runbook {runbook}"
        assert rule["alert"] in runbook.read_text(encoding="utf-8")


def test_every_alert_has_a_firing_and_a_quiet_case(example_fleet: Fleet, tmp_path: Path) -> None:
    central = write_central(example_fleet, tmp_path)
    alerts = {
        r["alert"]
        for g in load(central / "rules" / "flobs-alerts.yml")["groups"]
        for r in g["rules"]
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in load(central / "tests" / "flobs-alerts.test.yml")["tests"]:
        for art in test.get("alert_rule_test", []):
            (firing if art["exp_alerts"] else quiet).add(art["alertname"])
    assert firing == alerts
    assert quiet == alerts


def test_thresholds_and_durations_come_from_the_inventory(tmp_path: Path) -> None:
    fleet = fleet_from(tmp_path, CUSTOM_ALERTS)
    by_name = {a.name: a for a in central_rules.alerts(fleet)}
    assert by_name["FlintlockdGrpcErrors"].expr.endswith("> 0.2")
    assert by_name["FlintlockdGrpcErrors"].for_ == "3m"
    assert ">= 5" in by_name["FlintlockdRestarting"].expr
    assert "[30m]" in by_name["FlintlockdRestarting"].expr
    assert by_name["FirecrackerVmmPanic"].for_ == "2m"
    assert "[10m]" in by_name["FirecrackerMetricsStale"].expr
    assert by_name["LogShipperDown"].for_ == "20m"
    assert by_name["FlintlockdDown"].for_ == "90s"
    rules = central_rules.alert_rules(fleet)["groups"][0]["rules"]
    assert next(r for r in rules if r["alert"] == "FlintlockdDown")["for"] == "90s"


def test_hosts_missing_counts_the_inventory(tmp_path: Path, example_fleet: Fleet) -> None:
    by_name = {a.name: a for a in central_rules.alerts(example_fleet)}
    assert by_name["FlobsHostsMissing"].expr.endswith(f"< {len(example_fleet.hosts)}")
    rw = {a.name: a for a in central_rules.alerts(fleet_from(tmp_path, REMOTE_WRITE))}
    assert "federate" not in rw["FlobsHostsMissing"].expr
    assert "federate" not in rw["FlobsHostDown"].expr


def test_firecracker_series_are_never_rated(example_fleet: Fleet) -> None:
    exprs = [a.expr for a in central_rules.alerts(example_fleet)]
    exprs += [r.expr for r in central_rules.recording_rules(example_fleet)]
    for expr in exprs:
        assert parse_error(expr) is None, expr
        assert not re.search(r"\b(rate|irate|increase)\([^)]*firecracker", expr), expr


def test_alerts_read_only_series_that_cross_the_wire(example_fleet: Fleet) -> None:
    """A cheap guard next to the closure test: raw names are `up` or the centre's own."""
    recorded = {r.record for r in central_rules.recording_rules(example_fleet)}
    for alert in central_rules.alerts(example_fleet):
        for name in metric_names(alert.expr):
            own = {n for names in CENTRAL_JOB_PRODUCES.values() for n in names}
            assert name == "up" or ":" in name or name in recorded or name in own, (
                alert.name,
                name,
            )


@pytest.mark.tools
def test_host_rules_the_centre_reads_compute_per_second_values(
    tmp_path: Path, example_fleet: Fleet
) -> None:
    """The hosts' I/O totals and vCPU exits: deltas / flush interval, CH rated, 0 when absent."""
    host = example_fleet.host("fl-eu1-a-03")  # Cloud Hypervisor and Firecracker
    assert seconds(host.vars.flintlock_metrics.flush_interval) == 60
    (tmp_path / "local.yml").write_text(
        yamlio.dump(prometheus_local.rules(example_fleet, host)), "utf-8"
    )
    fc = {"namespace": "ns", "name": "fc", "uid": "u1"}
    ch = {"namespace": "ns", "name": "ch", "uid": "u2", "device": "net0"}
    series = [
        # Firecracker per-flush deltas: 600 B and 1200 B per 60 s flush.
        (central_rules.series_text("firecracker_net_rx_bytes_count", fc), "600x10"),
        (central_rules.series_text("firecracker_net_tx_bytes_count", fc), "1200x10"),
        (central_rules.series_text("firecracker_vcpu_exit_io_in", fc), "60x10"),
        (central_rules.series_text("firecracker_vcpu_exit_mmio_write", fc), "120x10"),
        # Cloud Hypervisor cumulative counter: +6000 B per minute.
        (central_rules.series_text("cloud_hypervisor_net_rx_bytes", ch), "0+6000x10"),
    ]
    test = {
        "rule_files": ["local.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {
                        "expr": "host:microvm_network_bytes:per_second",
                        "eval_time": "5m",
                        "exp_samples": [
                            {
                                "labels": "host:microvm_network_bytes:per_second",
                                "value": 600 / 60 + 1200 / 60 + 6000 / 60,
                            }
                        ],
                    },
                    # No block series at all: a number, not an empty result.
                    {
                        "expr": "host:microvm_block_bytes:per_second",
                        "eval_time": "5m",
                        "exp_samples": [
                            {"labels": "host:microvm_block_bytes:per_second", "value": 0}
                        ],
                    },
                    {
                        "expr": "microvm:firecracker_vcpu_exits:per_second",
                        "eval_time": "5m",
                        "exp_samples": [
                            {
                                "labels": central_rules.series_text(
                                    "microvm:firecracker_vcpu_exits:per_second", fc
                                ),
                                "value": 3,
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "local.test.yml").write_text(yamlio.dump(test), "utf-8")
    result = promtool("test", "rules", "local.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tools
def test_unit_tests_pass_for_a_thousand_hosts(tmp_path: Path) -> None:
    """FlobsHostsMissing counts against the inventory: 999 of 1,000 fires, 1,000 does not."""
    from tests.test_closure import example_doc, fleet_of, thousand_hosts

    fleet = fleet_of(thousand_hosts(example_doc()), tmp_path)
    central = write_central(fleet, tmp_path / "out")
    by_name = {a.name: a for a in central_rules.alerts(fleet)}
    assert by_name["FlobsHostsMissing"].expr.endswith("< 1000")
    result = promtool("test", "rules", "tests/flobs-alerts.test.yml", cwd=central)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tools
def test_hostile_runbook_url_comes_out_of_prometheus_unchanged(tmp_path: Path) -> None:
    """Prometheus renders annotations as Go templates; a `{{` in the URL stays literal."""
    doc = copy.deepcopy(yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8")))
    hostile = 'https://wiki.example/{{ .Broken }}/$HOME/"q"\\'
    doc["central"]["runbook_base_url"] = hostile
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    central = write_central(load_fleet(path).fleet, tmp_path / "out")
    tests = load(central / "tests" / "flobs-alerts.test.yml")["tests"]
    urls = {
        a["exp_annotations"]["runbook_url"]
        for t in tests
        for r in t.get("alert_rule_test", [])
        for a in r["exp_alerts"]
    }
    assert urls and all(u.startswith(hostile + "/") for u in urls)
    check = promtool("check", "rules", "rules/flobs-alerts.yml", cwd=central)
    assert check.returncode == 0, check.stdout + check.stderr
    # promtool renders the annotations: the expected URL is the raw one.
    result = promtool("test", "rules", "tests/flobs-alerts.test.yml", cwd=central)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_do_not_grow_with_the_fleet(tmp_path: Path) -> None:
    """promtool's test engine refuses queries over 10,000 samples; tests stay fleet-size free."""
    from benchmarks.fleet import write_inventory

    sizes = []
    for hosts in (10, 3000):
        inv = tmp_path / f"inv-{hosts}.yaml"
        write_inventory(inv, hosts)
        files = central_rules.fleet_files(load_fleet(inv).fleet)
        sizes.append(len(files[central_rules.TESTS_FILE]))
    # Only the expected host count in names/annotations differs (a few digits).
    assert abs(sizes[1] - sizes[0]) < 200, sizes


VERIFY_ON = {"verify": {"enabled": True, "listen": "127.0.0.1:9477", "failing_for": "5m"}}


def test_continuous_verify_is_off_by_default(example_fleet: Fleet) -> None:
    from flobs.artifacts import central

    assert not example_fleet.central.verify.enabled
    assert "FlobsVerificationFailing" not in [a.name for a in central_rules.alerts(example_fleet)]
    jobs = [j["job_name"] for j in central.config(example_fleet)["scrape_configs"]]
    assert "flobs-verify" not in jobs


@pytest.mark.tools
def test_continuous_verify_adds_scrape_job_alert_and_passing_unit_tests(tmp_path: Path) -> None:
    from flobs.artifacts import central

    fleet = fleet_from(tmp_path, VERIFY_ON)
    jobs = central.config(fleet)["scrape_configs"]
    assert {"job_name": "flobs-verify", "static_configs": [{"targets": ["127.0.0.1:9477"]}]} in jobs
    out = write_central(fleet, tmp_path / "out")
    rules = load(out / "rules" / "flobs-alerts.yml")["groups"][0]["rules"]
    (rule,) = [r for r in rules if r["alert"] == "FlobsVerificationFailing"]
    assert rule["for"] == "5m"
    assert rule["annotations"]["runbook_url"].endswith("/FlobsVerificationFailing.md")
    assert (REPO / "docs" / "runbooks" / "FlobsVerificationFailing.md").is_file()
    test = promtool("test", "rules", "tests/flobs-alerts.test.yml", cwd=out)
    assert test.returncode == 0, test.stdout + test.stderr
    # The cases catch an inverted rule.
    path = out / "rules" / "flobs-alerts.yml"
    text, n = re.subn(r"(flobs_verify_ok\S+) == 0", r"\1 == 1", path.read_text())
    assert n == 1
    path.write_text(text)
    broken = promtool("test", "rules", "tests/flobs-alerts.test.yml", cwd=out)
    assert broken.returncode != 0
    assert "FlobsVerificationFailing" in broken.stdout + broken.stderr
