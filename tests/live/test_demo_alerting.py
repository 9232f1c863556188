"""The demo's alerting: its inventory keys, its central processes, the webhook sink and
what demo.json says about them (no Prometheus needed; the sink is real HTTP)."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from flobs.errors import UsageError
from flobs.generate import generate
from flobs.live.demo import (
    LiveFleet,
    PortPool,
    alerting_tools_for,
    central_processes,
    demo_inventory,
    drop_agents_not_run,
    write_inventory,
)
from flobs.live.processes import Supervisor
from flobs.live.webhook import WebhookSink, deliveries

HOOK = "http://127.0.0.1:9/notify"


class CountingPorts(PortPool):
    """Ports 20001, 20002, … so inventories can be compared exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.next = 20000

    def take(self, address: str) -> int:
        self.next += 1
        return self.next


def _payload(*alerts: tuple[str, str, str]) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) with (status, alertname, host) alerts."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="FlobsHostDown"}',
        "truncatedAlerts": 0,
        "status": alerts[0][0],
        "receiver": "demo-webhook",
        "groupLabels": {"alertname": alerts[0][1]},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": name, "cluster": "demo", "host": host},
                "annotations": {"summary": f"{name} on {host}"},
                "startsAt": "2026-12-02T12:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "0123456789abcdef",
            }
            for status, name, host in alerts
        ],
    }


def test_demo_inventory_sends_alerts_to_the_webhook_with_short_timings(tmp_path: Path) -> None:
    doc = demo_inventory(1, tmp_path, ports=CountingPorts(), webhook=HOOK)
    central = doc["central"]
    assert central["alertmanager"] == {
        "listen": "127.0.0.1:20015",  # after the host's 13 endpoints and the centre
        "receivers": [{"name": "demo-webhook", "webhook": [{"url": HOOK}]}],
        "group_wait": "1s",
        "group_interval": "5s",
        "repeat_interval": "24h",
    }
    assert central["alerts"] == {
        "host_down_for": "10s",
        "flintlockd_down_for": "10s",
        "agent_down_for": "10s",
    }
    rw = demo_inventory(1, tmp_path, mode="remote_write", ports=CountingPorts(), webhook=HOOK)
    assert rw["central"]["alertmanager"]["vmalert_listen"] == "127.0.0.1:20017"
    # Without a webhook the demo has no Alertmanager and the default alert timings.
    plain = demo_inventory(1, tmp_path, ports=CountingPorts())
    assert "alertmanager" not in plain["central"]
    assert "alerts" not in plain["central"]


def _live(tmp_path: Path, mode: str) -> LiveFleet:
    doc = demo_inventory(2, tmp_path, mode=mode, webhook=HOOK)  # type: ignore[arg-type]
    write_inventory(doc, tmp_path / "inventory.yaml")
    fleet = generate(tmp_path / "inventory.yaml", tmp_path / "out").fleet
    return LiveFleet(fleet, tmp_path / "out", tmp_path, Supervisor(tmp_path / "logs"))


def test_federation_demo_runs_the_generated_alertmanager_first(tmp_path: Path) -> None:
    live = _live(tmp_path, "federation")
    am = live.fleet.central.alertmanager
    assert am is not None
    assert alerting_tools_for(live.fleet) == ("alertmanager",)
    procs = central_processes(live, {"prometheus": "PROM", "alertmanager": "AM"})
    assert [p.role for p in procs] == ["alertmanager", "prometheus"]
    first = procs[0]
    url = f"http://{am.listen}"
    assert (first.name, first.url, first.ready, first.after_hosts, first.after_data) == (
        "alertmanager",
        url,
        f"{url}/-/ready",
        False,
        False,
    )
    assert first.argv == [
        "AM",
        f"--config.file={tmp_path / 'out' / 'central' / 'alertmanager.yml'}",
        f"--web.listen-address={am.listen}",
        f"--storage.path={tmp_path / 'data' / 'alertmanager'}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    # The central Prometheus notifies exactly that Alertmanager.
    central = (tmp_path / "out" / "central" / "prometheus.yml").read_text(encoding="utf-8")
    assert f"- {am.listen}" in central or f'- "{am.listen}"' in central


def test_remote_write_demo_runs_vmalert_with_the_generated_flags_once_data_is_in(
    tmp_path: Path,
) -> None:
    live = _live(tmp_path, "remote_write")
    am = live.fleet.central.alertmanager
    assert am is not None
    assert alerting_tools_for(live.fleet) == ("alertmanager", "vmalert")
    bins = {"victoria-metrics": "VM", "alertmanager": "AM", "vmalert": "VMALERT"}
    procs = central_processes(live, bins)
    assert [p.role for p in procs] == ["alertmanager", "victoria-metrics", "vmalert"]
    vmalert = procs[2]
    args = (tmp_path / "out" / "central" / "vmalert.args").read_text().splitlines()
    assert vmalert.argv == [
        "VMALERT",
        *(a for a in args if a and not a.startswith("#")),
        "-loggerLevel=WARN",
    ]
    assert "-rule=rules/*.yml" in vmalert.argv  # relative: it runs from central/
    assert vmalert.cwd == tmp_path / "out" / "central"
    assert (vmalert.url, vmalert.after_data) == (f"http://{am.vmalert_listen}", True)


def test_sink_records_each_alert_of_each_notification(tmp_path: Path) -> None:
    calls: list[int] = []
    log = tmp_path / "hook.jsonl"
    with WebhookSink(log=log, on_delivery=lambda: calls.append(1)) as sink:
        assert sink.url.startswith("http://127.0.0.1:")
        assert sink.url.endswith("/notify")
        body = _payload(("firing", "FlobsHostDown", "h-2"), ("firing", "FlintlockdDown", "h-2"))
        assert httpx.post(sink.url, json=body, timeout=5).status_code == 200
        got = sink.received()
        assert [(d.key(), d.receiver, d.starts_at) for d in got] == [
            (("firing", "FlobsHostDown", "h-2"), "demo-webhook", "2026-12-02T12:00:00.000Z"),
            (("firing", "FlintlockdDown", "h-2"), "demo-webhook", "2026-12-02T12:00:00.000Z"),
        ]
        assert got[0].labels == {"alertname": "FlobsHostDown", "cluster": "demo", "host": "h-2"}
        assert calls == [1]
        assert [json.loads(line) for line in log.read_text().splitlines()] == [body]
        # Not a notification, or not for us: refused, nothing recorded.
        bad = [
            httpx.post(sink.url, content=b"{not json", timeout=5).status_code,
            httpx.post(sink.url, json={"alerts": "no"}, timeout=5).status_code,
            httpx.post(sink.url.replace("/notify", "/other"), json=body, timeout=5).status_code,
        ]
        assert bad == [400, 400, 404]
        assert len(sink.received()) == 2
        assert calls == [1]
    sink.stop()  # twice is fine


def test_sink_listens_on_loopback_only() -> None:
    with pytest.raises(UsageError, match=r"^the webhook sink listens on loopback only, not 0\."):
        WebhookSink("0.0.0.0")


def test_deliveries_time_is_utc_with_milliseconds() -> None:
    when = datetime(2026, 12, 2, 14, 0, 1, 234567, tzinfo=timezone(timedelta(hours=2)))
    (d,) = deliveries(_payload(("resolved", "FlobsHostDown", "h-1")), when, 5.0)
    assert (d.received, d.status, d.monotonic) == ("2026-12-02T12:00:01.234Z", "resolved", 5.0)
    assert datetime.fromisoformat(d.received.replace("Z", "+00:00")).tzinfo == UTC


def test_demo_json_lists_alertmanager_webhook_and_notifications(tmp_path: Path) -> None:
    live = _live(tmp_path, "federation")
    am = live.fleet.central.alertmanager
    assert am is not None
    am_url = f"http://{am.listen}"
    sink = WebhookSink(log=tmp_path / "logs" / "webhook.jsonl").start()
    live.webhook = sink
    # A stand-in process for the Alertmanager: demo.json reports what the supervisor holds.
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = live.supervisor.start("alertmanager", sleeper, role="alertmanager", url=am_url)
    sink.on_delivery = live.write_demo_json
    try:
        live.write_demo_json()
        doc = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
        assert doc["central"] == {
            "prometheus": live.central_url,
            "logs": None,
            "traces": None,
            "alertmanager": am_url,
            "vmalert": None,
        }
        assert doc["alerting"] == {"alertmanager": am_url, "webhook": sink.url, "notifications": []}
        assert doc["processes"] == [
            {
                "role": "alertmanager",
                "host": None,
                "pid": child.proc.pid,
                "url": am_url,
                "log": str(child.log),
            },
            {
                "role": "webhook",
                "host": None,
                "pid": os.getpid(),
                "url": sink.url,
                "log": str(tmp_path / "logs" / "webhook.jsonl"),
            },
        ]
        httpx.post(sink.url, json=_payload(("firing", "FlobsHostDown", "demo-2")), timeout=5)
        # The sink rewrote demo.json before it answered.
        doc = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
        (received,) = doc["alerting"]["notifications"]
        assert received == {
            "received": received["received"],
            "receiver": "demo-webhook",
            "status": "firing",
            "alertname": "FlobsHostDown",
            "host": "demo-2",
            "labels": {"alertname": "FlobsHostDown", "cluster": "demo", "host": "demo-2"},
            "starts_at": "2026-12-02T12:00:00.000Z",
        }
        assert received["received"] == sink.received()[0].received
    finally:
        live.stop()
    assert not list(tmp_path.glob(".demo.json.tmp"))


def test_agents_the_machine_cannot_run_are_not_declared(tmp_path: Path) -> None:
    doc = demo_inventory(2, tmp_path, ports=CountingPorts())
    drop_agents_not_run(doc, otelcol=False, process_exporter=False)
    assert [
        (h["vars"]["otelcol"].get("enabled"), h["vars"]["process_exporter"].get("enabled"))
        for h in doc["hosts"]
    ] == [(False, False), (False, False)]
    write_inventory(doc, tmp_path / "inventory.yaml")
    generate(tmp_path / "inventory.yaml", tmp_path / "out")
    jobs = (tmp_path / "out" / "hosts" / "demo-1" / "prometheus.yml").read_text()
    found = [line.split(":", 1)[1].strip() for line in jobs.splitlines() if "job_name:" in line]
    # Nothing is scraped that the demo does not start (no otelcol, no process job)
    # but the log shipper, which no demo starts: its alert is not generated.
    assert found == ["flintlockd", "flintlock-metrics", "node", "promtail", "prometheus"]
    rules = (tmp_path / "out" / "central" / "rules" / "flobs-alerts.yml").read_text()
    assert "alert: HostExporterDown" in rules
    assert "alert: LogShipperDown" not in rules
    kept = demo_inventory(1, tmp_path, ports=CountingPorts())
    drop_agents_not_run(kept, otelcol=True, process_exporter=True)
    assert "enabled" not in kept["hosts"][0]["vars"]["otelcol"]
    assert "enabled" not in kept["hosts"][0]["vars"]["process_exporter"]
    assert "extensions" not in kept
