"""Alert delivery artifacts: Alertmanager config, routing tests, alerting block, vmalert."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.artifacts import alertmanager, central, central_rules
from flobs.artifacts.alertmanager import inhibit_rules, route_receivers
from flobs.artifacts.central_rules import alerts
from flobs.inventory import load_fleet
from flobs.model import Fleet
from tests.conftest import EXAMPLE_INVENTORY, require_major, require_tool


def fleet_from(tmp_path: Path, change: dict[str, Any] | None = None) -> Fleet:
    """The example fleet with ``change``'s keys replacing those of its ``central`` section."""
    doc = yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8"))
    del doc["central"]["alertmanager"]
    doc["central"].update(change or {})
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    return load_fleet(path).fleet


@pytest.fixture(scope="module")
def example() -> Fleet:
    return load_fleet(EXAMPLE_INVENTORY).fleet


def _write(fleet: Fleet, out: Path) -> Path:
    for rel, data in alertmanager.fleet_files(fleet).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return out / "central"


def _amtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("amtool"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_amtool_accepts_the_generated_config(example: Fleet, tmp_path: Path) -> None:
    proc = _amtool("check-config", "alertmanager.yml", cwd=_write(example, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 receivers" in proc.stdout
    assert "3 inhibit rules" in proc.stdout  # cluster down, host down, metrics down


def test_receivers_carry_secret_paths_only(example: Fleet) -> None:
    doc = alertmanager.config(example)
    assert doc["receivers"] == [
        {
            "name": "platform-tickets",
            "email_configs": [
                {
                    "to": "platform@example.internal",
                    "from": "alertmanager@example.internal",
                    "smarthost": "smtp.example.internal:587",
                    "auth_username": "alertmanager",
                    "auth_password_file": "/etc/alertmanager/secrets/smtp-password",
                    "require_tls": True,
                    "send_resolved": False,
                }
            ],
        },
        {
            "name": "platform-pager",
            "pagerduty_configs": [
                {
                    "routing_key_file": "/etc/alertmanager/secrets/pagerduty-platform",
                    "send_resolved": True,
                }
            ],
        },
        {
            "name": "zone-b-chat",
            "slack_configs": [
                {
                    "api_url_file": "/etc/alertmanager/secrets/slack-zone-b",
                    "channel": "#fl-eu1-b",
                    "title": "{{ .CommonLabels.alertname }} ({{ .Status }})",
                    "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
                    "send_resolved": True,
                }
            ],
        },
        {
            "name": "canary-hook",
            "webhook_configs": [
                {
                    "url": "https://hooks.example.internal/flobs/canary",
                    "http_config": {
                        "authorization": {
                            "type": "Bearer",
                            "credentials_file": "/etc/alertmanager/secrets/hook-token",
                        }
                    },
                    "max_alerts": 0,
                    "send_resolved": True,
                }
            ],
        },
    ]


def test_routes_by_severity_and_inventory_label(example: Fleet) -> None:
    route = alertmanager.config(example)["route"]
    assert route["receiver"] == "platform-tickets"
    assert route["group_by"] == ["alertname", "cluster", "host"]
    assert route["routes"] == [
        # channel=canary is an inventory label: it becomes the hosts that carry it.
        {"receiver": "canary-hook", "matchers": ['host=~"fl-eu1-b-02"'], "continue": True},
        {"receiver": "platform-pager", "matchers": ['severity="critical"']},
        {
            "receiver": "zone-b-chat",
            "matchers": ['host=~"fl-eu1-b-01|fl-eu1-b-02|fl-eu1-b-03"'],
        },
    ]


def test_route_receivers_follows_alertmanager_order(example: Fleet) -> None:
    am = example.central.alertmanager
    assert am is not None

    def to(**labels: str) -> list[str]:
        return route_receivers(am, {"cluster": "eu1", **labels})

    assert to(severity="critical", host="fl-eu1-a-01") == ["platform-pager"]
    assert to(severity="warning", host="fl-eu1-a-01") == ["platform-tickets"]  # default
    assert to(severity="warning", host="fl-eu1-b-01") == ["zone-b-chat"]
    # continue: the canary hook, then the first later match.
    assert to(severity="critical", host="fl-eu1-b-02") == ["canary-hook", "platform-pager"]
    assert to(severity="warning", host="fl-eu1-b-02") == ["canary-hook", "zone-b-chat"]


def test_inhibition_follows_from_the_alert_set(example: Fleet) -> None:
    names = [a.name for a in alerts(example) if a.per_host and a.name != "FlobsHostDown"]
    rules = inhibit_rules(alerts(example))
    host_down = next(r for r in rules if r["source_matchers"] == ['alertname="FlobsHostDown"'])
    assert host_down == {
        "source_matchers": ['alertname="FlobsHostDown"'],
        "target_matchers": ['alertname=~"' + "|".join(sorted(names)) + '"'],
        "equal": ["cluster", "host"],
    }
    cluster = next(r for r in rules if r["source_matchers"] == ['alertname="FlobsClusterDown"'])
    assert cluster["equal"] == ["cluster"]
    assert "FlobsHostDown" in cluster["target_matchers"][0]
    # Alerts without a host are never muted by a host being down.
    assert "FlobsHostsMissing" not in host_down["target_matchers"][0]
    assert [r for r in rules if "FlobsHostsMissing" in r["target_matchers"][0]] == []


def test_remote_write_host_down_mutes_hosts_missing_of_its_cluster(tmp_path: Path) -> None:
    fleet = fleet_from(
        tmp_path,
        {
            "prometheus": {
                "mode": "remote_write",
                "url": "http://vm.example.internal:8428",
                "remote_write": {"url": "http://vm.example.internal:8428/api/v1/write"},
            },
            "alertmanager": {"receivers": [{"name": "r"}]},
        },
    )
    rules = alertmanager.config(fleet)["inhibit_rules"]
    federation = inhibit_rules(alerts(fleet), "federation")
    # One rule more than federation has, last: a dead host's `up` leaves the store's
    # lookback and the reporting count drops, which must not page a second time.
    assert rules[:-1] == federation
    assert rules[-1] == {
        "source_matchers": ['alertname="FlobsHostDown"'],
        "target_matchers": ['alertname=~"FlobsHostsMissing"'],
        "equal": ["cluster"],
    }


def test_every_routing_test_passes_amtool(example: Fleet, tmp_path: Path) -> None:
    cwd = _write(example, tmp_path)
    doc = yamlio.load((cwd / "alertmanager-routes.test.yml").read_text(encoding="utf-8"))
    tests: list[dict[str, Any]] = doc["tests"]
    # every alert, per distinct routing of hosts: a-01 (no host route), b-01 (zone b),
    # b-02 (zone b + canary); alerts without a host once.
    per_host = [a for a in alerts(example) if a.per_host]
    assert len(tests) == 3 * len(per_host) + (len(alerts(example)) - len(per_host))
    for test in tests:
        labels = [f'{k}="{v}"' for k, v in sorted(test["labels"].items())]
        proc = _amtool(
            "config",
            "routes",
            "test",
            "--config.file=alertmanager.yml",
            "--verify.receivers=" + ",".join(test["receivers"]),
            *labels,
            cwd=cwd,
        )
        assert proc.returncode == 0, (test, proc.stdout, proc.stderr)


def test_host_names_are_escaped_in_route_regexes(tmp_path: Path) -> None:
    fleet = fleet_from(tmp_path, {"alertmanager": {"receivers": [{"name": "r"}]}})
    am = fleet.central.alertmanager
    assert am is not None
    assert alertmanager._any_of(["a.b", "c|d", "e\\f"]) == "a\\.b|c\\|d|e\\\\f"
    assert alertmanager.matcher("host", 'x"y\\') == 'host="x\\"y\\\\"'


def test_alerting_block_for_external_alertmanagers(tmp_path: Path) -> None:
    fleet = fleet_from(
        tmp_path,
        {
            "alertmanager": {
                "urls": [
                    "https://am-1.example.internal:9093/am",
                    "https://am-2.example.internal:9093/am",
                    "http://127.0.0.1:9093",
                ],
                "bearer_token_file": "/etc/prometheus/am-token",
                "ca_file": "/etc/prometheus/am-ca.pem",
            }
        },
    )
    assert alertmanager.fleet_files(fleet) == {}  # nothing to generate: they run their own
    auth = {
        "authorization": {"type": "Bearer", "credentials_file": "/etc/prometheus/am-token"},
        "tls_config": {"ca_file": "/etc/prometheus/am-ca.pem"},
    }
    assert central.config(fleet)["alerting"] == {
        "alertmanagers": [
            {
                "scheme": "https",
                "path_prefix": "/am",
                "api_version": "v2",
                "timeout": "10s",
                **auth,
                "static_configs": [
                    {"targets": ["am-1.example.internal:9093", "am-2.example.internal:9093"]}
                ],
            },
            {
                "scheme": "http",
                "api_version": "v2",
                "timeout": "10s",
                **auth,
                "static_configs": [{"targets": ["127.0.0.1:9093"]}],
            },
        ]
    }


def test_no_alerting_block_without_alertmanager(tmp_path: Path) -> None:
    fleet = fleet_from(tmp_path)
    assert "alerting" not in central.config(fleet)


def _remote_write(tmp_path: Path) -> Fleet:
    return fleet_from(
        tmp_path,
        {
            "prometheus": {
                "listen": "0.0.0.0:9090",
                "mode": "remote_write",
                "url": "https://vm.example.internal",
                "remote_write": {
                    "url": "https://vm.example.internal/api/v1/write",
                    "bearer_token_file": "/etc/flobs/vm-token",
                },
            },
            "alertmanager": {
                "receivers": [{"name": "r", "webhook": [{"url": "https://hook.example"}]}],
                "basic_auth": {"username": "vmalert", "password_file": "/etc/flobs/am-pw"},
            },
        },
    )


def test_remote_write_mode_runs_vmalert(tmp_path: Path) -> None:
    fleet = _remote_write(tmp_path)
    assert "alerting" not in central.config(fleet)  # vmalert notifies, not Prometheus
    files = alertmanager.fleet_files(fleet)
    text = files["central/vmalert.args"].decode()
    assert text.startswith("# vmalert flags, one per line")
    assert "#   grep -v '^#' vmalert.args | xargs -d '\\n' vmalert\n" in text
    args = [line for line in text.splitlines() if not line.startswith("#")]
    assert args == [
        "-rule=rules/*.yml",
        "-datasource.url=https://vm.example.internal",
        "-remoteWrite.url=https://vm.example.internal/api/v1/write",
        "-remoteWrite.disablePathAppend",
        "-remoteRead.url=https://vm.example.internal",
        "-evaluationInterval=30s",
        "-external.label=cluster=eu1",
        "-httpListenAddr=127.0.0.1:8880",
        "-datasource.bearerTokenFile=/etc/flobs/vm-token",
        "-remoteWrite.bearerTokenFile=/etc/flobs/vm-token",
        "-remoteRead.bearerTokenFile=/etc/flobs/vm-token",
        "-notifier.url=http://127.0.0.1:9093",
        "-notifier.basicAuth.username=vmalert",
        "-notifier.basicAuth.passwordFile=/etc/flobs/am-pw",
    ]


@pytest.mark.tools
def test_vmalert_accepts_flags_and_rules(tmp_path: Path) -> None:
    vmalert = require_tool("vmalert")
    fleet = _remote_write(tmp_path / "inv")
    out = tmp_path / "out"
    for rel, data in (central_rules.fleet_files(fleet) | alertmanager.fleet_files(fleet)).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    args = [
        a
        for a in (out / "central/vmalert.args").read_text().splitlines()
        if not a.startswith("#") and "bearerTokenFile" not in a and "passwordFile" not in a
    ]
    proc = subprocess.run(
        [vmalert, *args, "-dryRun"],
        cwd=out / "central",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert fleet.central.alertmanager is not None


@pytest.mark.tools
@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize("mode", ["federation", "remote_write"])
def test_central_rules_and_unit_tests_pass_both_promtool_majors(
    tmp_path: Path, major: int, mode: str
) -> None:
    binary = require_major("promtool", major)
    version = "2.42" if major == 2 else "3.13"
    prometheus: dict[str, Any] = {"listen": "0.0.0.0:9090", "version": version}
    if mode == "remote_write":
        prometheus |= {
            "mode": "remote_write",
            "url": "http://127.0.0.1:8428",
            "remote_write": {"url": "http://127.0.0.1:8428/api/v1/write"},
        }
    fleet = fleet_from(tmp_path / "inv", {"prometheus": prometheus})
    out = tmp_path / "out"
    for rel, data in central_rules.fleet_files(fleet).items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    central_dir = out / "central"
    rules = sorted(str(p.relative_to(central_dir)) for p in (central_dir / "rules").glob("*.yml"))
    tests = sorted(str(p.relative_to(central_dir)) for p in (central_dir / "tests").glob("*.yml"))
    assert len(rules) == (3 if mode == "remote_write" else 2)
    for args in (["check", "rules", *rules], ["test", "rules", *tests]):
        proc = subprocess.run(
            [binary, *args], cwd=central_dir, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
