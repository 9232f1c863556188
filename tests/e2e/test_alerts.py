"""Alerts as the centre sees them: real Prometheus 2.x/3.x, Alertmanager, VictoriaMetrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flobs.live.alerts import alerts_seen
from flobs.live.processes import Supervisor
from flobs.live.prometheus_api import PrometheusAPI
from tests.conftest import free_port, require_major, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

RULES = """\
groups:
- name: t
  interval: 1s
  rules:
  - alert: FlintlockdGrpcErrors
    expr: label_replace(vector(1), "grpc_method", "CreateMicroVM", "", "") * on() group_left() 1
    labels: {host: h-1, severity: warning}
  - alert: FlintlockdRestarting
    expr: label_replace(vector(1), "host", "h-2", "", "")
    for: 1h
"""


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    sup = Supervisor(tmp_path / "logs")
    yield sup
    sup.stop_all()


def _start_alertmanager(sup: Supervisor, tmp_path: Path) -> str:
    binary = require_tool("prometheus-alertmanager", "alertmanager")
    port = free_port()
    (tmp_path / "am.yml").write_text(
        "route: {receiver: 'none', group_wait: 0s}\nreceivers: [{name: 'none'}]\n"
    )
    sup.start(
        "alertmanager",
        [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    sup.wait_ready("alertmanager", f"{url}/-/ready")
    return url


@pytest.mark.parametrize("major", [2, 3])
def test_firing_and_pending_with_labels_and_the_alertmanager_holding_them(
    tmp_path: Path, supervisor: Supervisor, major: int
) -> None:
    prometheus = require_major("prometheus", major)
    am = _start_alertmanager(supervisor, tmp_path)
    port = free_port()
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "prometheus.yml").write_text(
        "global: {evaluation_interval: 1s, external_labels: {cluster: c1}}\n"
        "rule_files: [rules.yml]\n"
        "alerting:\n  alertmanagers:\n  - static_configs:\n"
        f"    - targets: ['127.0.0.1:{am.rsplit(':', 1)[1]}']\n"
    )
    supervisor.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # The first send can come before the Alertmanager is discovered, and is
            # dropped; the default resend is a minute later.
            "--rules.alert.resend-delay=1s",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    supervisor.wait_ready("prometheus", f"{url}/-/ready")
    with PrometheusAPI(url) as api:
        deadline = time.monotonic() + 30
        while True:
            seen = alerts_seen(api)
            firing = [a for a in seen.alerts if a.state == "firing"]
            if (firing and firing[0].delivered_to) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert seen.source == "alerts API"
    assert seen.notes == []
    assert seen.alertmanagers == [f"{am}/api/v2/alerts"]
    assert [(a.name, a.state, a.labels, a.delivered_to) for a in seen.alerts] == [
        (
            "FlintlockdGrpcErrors",
            "firing",
            {"grpc_method": "CreateMicroVM", "host": "h-1", "severity": "warning"},
            (f"{am}/api/v2/alerts",),
        ),
        ("FlintlockdRestarting", "pending", {"host": "h-2"}, ()),
    ]
    assert all(a.active_since for a in seen.alerts)
    assert seen.notes == []


def test_alerts_series_when_the_store_has_no_alerts_api(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    binary = require_tool("victoria-metrics")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor.start(
        "victoria-metrics",
        [
            binary,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={tmp_path / 'vm'}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
        ],
    )
    supervisor.wait_ready("victoria-metrics", f"{url}/health", expect="OK")
    now_ms = int(time.time() * 1000)
    lines = [
        {"name": "HostDown", "state": "firing", "host": "h-1"},
        {"name": "HostDown", "state": "pending", "host": "h-2"},
    ]
    body = "\n".join(
        json.dumps(
            {
                "metric": {
                    "__name__": "ALERTS",
                    "alertname": x["name"],
                    "alertstate": x["state"],
                    "host": x["host"],
                },
                "values": [1],
                "timestamps": [now_ms - 2000],
            }
        )
        for x in lines
    )
    httpx.post(f"{url}/api/v1/import", content=body, timeout=10).raise_for_status()
    with PrometheusAPI(url) as api:
        deadline = time.monotonic() + 20
        while not (seen := alerts_seen(api)).alerts and time.monotonic() < deadline:
            time.sleep(0.5)
    assert seen.source == "ALERTS series"
    assert [(a.name, a.state, a.labels) for a in seen.alerts] == [
        ("HostDown", "firing", {"host": "h-1"}),
        ("HostDown", "pending", {"host": "h-2"}),
    ]
    assert seen.alertmanagers == []
