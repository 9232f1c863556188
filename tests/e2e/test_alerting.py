"""Alerts reach a person: real Alertmanager, real inhibition, delivery in both modes.

* Inhibition: the generated config in a real Alertmanager; alerts posted to its API; the
  API says which are suppressed and by what.
* Delivery: a test fleet (federation: the central Prometheus evaluates the rules;
  remote_write: vmalert with the generated flags) with a webhook receiver the test runs.
  Healthy, nothing fires; one host dies, FlobsHostDown for that host, and only it,
  arrives within for + group_wait + evaluation and detection time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from flobs.artifacts.central_rules import remote_write_silence
from flobs.generate import generate
from flobs.live.demo import demo_inventory, write_inventory
from flobs.live.processes import Supervisor
from flobs.live.webhook import Delivery, WebhookSink
from flobs.promtime import seconds
from tests.conftest import free_port, require_tool
from tests.e2e.alerting import alertmanager_inventory, delivered, start_alertmanager
from tests.e2e.fleet import FleetFactory

pytestmark = [pytest.mark.e2e, pytest.mark.tools]


def _post(url: str, *alerts: dict[str, str]) -> None:
    body = [{"labels": labels, "annotations": {"summary": "test"}} for labels in alerts]
    httpx.post(f"{url}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def _states(url: str) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(alertname, host) → (state, names of the alerts inhibiting it)."""
    alerts = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
    by_fp = {a["fingerprint"]: a["labels"]["alertname"] for a in alerts}
    return {
        (a["labels"]["alertname"], a["labels"].get("host", "")): (
            a["status"]["state"],
            sorted(by_fp[f] for f in a["status"]["inhibitedBy"]),
        )
        for a in alerts
    }


def test_inhibition_in_a_real_alertmanager(tmp_path: Path) -> None:
    with WebhookSink() as sink:
        doc = demo_inventory(3, tmp_path, cluster="inh")
        doc["central"].update(alertmanager_inventory(sink, free_port()))
        write_inventory(doc, tmp_path / "inventory.yaml")
        fleet = generate(tmp_path / "inventory.yaml", tmp_path / "out").fleet
        with Supervisor(tmp_path / "logs") as sup:
            url = start_alertmanager(sup, fleet, tmp_path / "out", tmp_path / "am")

            def alert(name: str, host: str = "", severity: str = "critical") -> dict[str, str]:
                labels = {"alertname": name, "cluster": "inh", "severity": severity}
                return labels | ({"host": host} if host else {})

            _post(
                url,
                alert("FlobsHostDown", "inh-2"),
                alert("FlintlockdDown", "inh-2"),
                alert("HostExporterDown", "inh-2", "warning"),
                alert("FlintlockdDown", "inh-1"),
                alert("FlobsHostsMissing"),
            )
            assert _states(url) == {
                ("FlobsHostDown", "inh-2"): ("active", []),
                # The host is down: its other alerts say nothing new.
                ("FlintlockdDown", "inh-2"): ("suppressed", ["FlobsHostDown"]),
                ("HostExporterDown", "inh-2"): ("suppressed", ["FlobsHostDown"]),
                # Another host, and an alert without a host, are not muted.
                ("FlintlockdDown", "inh-1"): ("active", []),
                ("FlobsHostsMissing", ""): ("active", []),
            }
            # Delivered: exactly the inhibition-approved set, once each.
            got = sink.wait_for(lambda n: len(delivered(n)) >= 3, timeout=30)
            assert delivered(got) == [
                ("firing", "FlintlockdDown", "inh-1"),
                ("firing", "FlobsHostDown", "inh-2"),
                ("firing", "FlobsHostsMissing", ""),
            ]

            # Most of the cluster down: one page, every per-host alert muted.
            _post(url, alert("FlobsClusterDown"))
            assert _states(url) == {
                ("FlobsClusterDown", ""): ("active", []),
                ("FlobsHostDown", "inh-2"): ("suppressed", ["FlobsClusterDown"]),
                # Alertmanager names the first rule that mutes: the cluster one is first.
                ("FlintlockdDown", "inh-2"): ("suppressed", ["FlobsClusterDown"]),
                ("HostExporterDown", "inh-2"): ("suppressed", ["FlobsClusterDown"]),
                ("FlintlockdDown", "inh-1"): ("suppressed", ["FlobsClusterDown"]),
                ("FlobsHostsMissing", ""): ("active", []),
            }


def _names(got: list[Delivery]) -> set[tuple[str, str]]:
    return {(d.alertname, d.host or "") for d in got}


def test_remote_write_host_down_mutes_hosts_missing_in_a_real_alertmanager(
    tmp_path: Path,
) -> None:
    with WebhookSink() as sink:
        doc = demo_inventory(3, tmp_path, cluster="rw", mode="remote_write")
        doc["central"].update(alertmanager_inventory(sink, free_port(), vmalert_port=free_port()))
        write_inventory(doc, tmp_path / "inventory.yaml")
        fleet = generate(tmp_path / "inventory.yaml", tmp_path / "out").fleet
        with Supervisor(tmp_path / "logs") as sup:
            url = start_alertmanager(sup, fleet, tmp_path / "out", tmp_path / "am")
            host_down = {"alertname": "FlobsHostDown", "cluster": "rw", "severity": "critical"}
            missing = {"alertname": "FlobsHostsMissing", "cluster": "rw", "severity": "critical"}
            _post(url, host_down | {"host": "rw-2"}, missing)
            assert _states(url) == {
                ("FlobsHostDown", "rw-2"): ("active", []),
                ("FlobsHostsMissing", ""): ("suppressed", ["FlobsHostDown"]),
            }
            # A barrier instead of a sleep: a later group (same group_wait) flushes after
            # the FlobsHostsMissing group would have.
            _post(url, {"alertname": "FlintlockdDown", "cluster": "rw", "host": "rw-1"})
            got = sink.wait_for(lambda d: ("FlintlockdDown", "rw-1") in _names(d), timeout=60)
            assert delivered(got) == [
                ("firing", "FlintlockdDown", "rw-1"),
                ("firing", "FlobsHostDown", "rw-2"),
            ]


HOST_DOWN_FOR = "10s"


@pytest.mark.parametrize("mode", ["federation", "remote_write"])
def test_one_host_dies_and_its_host_down_is_delivered(
    fleet_factory: FleetFactory, mode: str
) -> None:
    require_tool("alertmanager")
    if mode == "remote_write":
        require_tool("vmalert")
    with WebhookSink() as sink:
        central: dict[str, Any] = alertmanager_inventory(
            sink,
            free_port(),
            vmalert_port=free_port() if mode == "remote_write" else None,
            host_down_for=HOST_DOWN_FOR,
        )
        # The fleet starts its Alertmanager (and vmalert) from the inventory.
        live = fleet_factory(3, mode=mode, central=central)
        p = live.fleet.central.prometheus
        evaluation = seconds(p.evaluation_interval)

        # Healthy: let rules evaluate for longer than `for:`; nothing may fire.
        time.sleep(seconds(HOST_DOWN_FOR) + 3 * evaluation + 2)
        with live.api() as api:
            firing = api.query('ALERTS{alertstate="firing"}')
        assert firing == [], firing
        assert sink.received() == []

        # One host dies: its local Prometheus and exporters stop.
        victim = "e2e-2"
        died = time.monotonic()
        for name in list(live.supervisor.children):
            if name.endswith(f"-{victim}"):
                live.supervisor.stop(name)
        # Detection (a failed federate scrape; in remote_write no `up` sample for the
        # silence window), then `for:`, group_wait and one evaluation.
        silence = remote_write_silence(live.fleet)
        detect = seconds(p.scrape_interval) if mode == "federation" else seconds(silence)
        budget = detect + seconds(HOST_DOWN_FOR) + 1 + evaluation
        got = sink.wait_for(bool, timeout=budget + 60)
        assert got, f"nothing delivered in {budget + 60:.0f} s"
        took = got[0].monotonic - died
        assert delivered(got) == [("firing", "FlobsHostDown", victim)]
        assert took <= budget + 15, f"FlobsHostDown took {took:.1f} s, budget {budget:.1f} s"
        print(f"{mode}: FlobsHostDown delivered {took:.1f} s after the host died")
        labels = got[0].labels
        assert (labels["cluster"], labels["host"], labels["severity"]) == (
            "e2e",
            victim,
            "critical",
        )
        # Delivered once: the next group_interval repeats nothing (repeat_interval 1h).
        time.sleep(5)
        assert [d.key() for d in sink.received()] == [("firing", "FlobsHostDown", victim)]
