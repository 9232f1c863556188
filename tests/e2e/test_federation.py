"""Federation end to end: simulators → local Prometheus → central Prometheus → verify."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import httpx
import jsonschema
import pytest

from flobs import resources
from flobs.live.demo import LiveFleet
from flobs.live.prometheus_api import PrometheusAPI
from flobs.sim.flintlockd import GrpcTraffic
from flobs.sim.host import SimulatedHost
from tests.e2e.fleet import LONG_FLUSH, FleetFactory, inventory_of
from tests.helpers import run_flobs

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

# A raw counter federated on purpose, so the centre's value can be compared with the
# simulator's own sequence.
STARTED = 'grpc_server_started_total{grpc_method="GetMicroVM"}'


@pytest.fixture(scope="module")
def fleet3(module_fleet: FleetFactory) -> LiveFleet:
    return module_fleet(3, extra_match=(STARTED,))


def test_verify_passes_for_every_host(fleet3: LiveFleet) -> None:
    r = run_flobs("verify", "-i", inventory_of(fleet3), "--out", fleet3.out, "--format", "json")
    assert r.code == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    jsonschema.validate(report, resources.schema("verify-report.schema.json"))
    assert report["ok"] is True
    assert report["mode"] == "federation"
    assert [(h["name"], h["state"]) for h in report["hosts"]] == [
        ("e2e-1", "present"),
        ("e2e-2", "present"),
        ("e2e-3", "present"),
    ]
    for h in report["hosts"]:  # flobs recording series arrived, and recently
        assert h["series"] > 0
        assert h["age_seconds"] <= report["stale_after"]
    assert report["unexpected_hosts"] == []
    assert report["summary"]["query_errors"] == 0
    rules = [q for q in report["queries"] if q["kind"] == "recording"]
    assert rules, "central recording rules were run"
    assert {q["outcome"] for q in rules} <= {"data", "no data"}
    # Alerts come from the alerts API, each pending or firing, never both at once.
    assert report["alerts"]["source"] == "alerts API"
    for alert in report["alerts"]["alerts"]:
        assert alert["state"] in ("firing", "pending"), alert
        assert alert["labels"].get("host") in (None, "e2e-1", "e2e-2", "e2e-3"), alert
    # The text report says the same, for people.
    text = run_flobs("verify", "-i", inventory_of(fleet3), "--prometheus", fleet3.central_url)
    assert text.code == 0, text.stdout + text.stderr
    assert "hosts: 3/3 present" in text.stdout
    assert report["summary"]["panels"]["total"] == len(report["panels"]) > 0
    assert text.stdout.rstrip().endswith("result: OK")


def _served(sim: SimulatedHost, path: str) -> dict[tuple[str, str], int]:
    v = sim.host.vars.flintlock_metrics
    body = httpx.get(f"http://{v.endpoint}{path}", timeout=5).text
    out = {}
    for line in body.splitlines():
        m = re.match(
            r'^([A-Za-z0-9_]+)\{namespace="[^"]*",name="[^"]*",uid="([^"]+)"\} (\d+)$', line
        )
        assert m, line
        out[(m[1], m[2])] = int(m[3])
    return out


def _await_series(api: PrometheusAPI, query: str, seconds: float = 30.0) -> list[Any]:
    """The query's result once it has one: under load a series may need another
    scrape + rule evaluation + federation round to reach the centre."""
    deadline = time.monotonic() + seconds
    got = api.query(query)
    while not got and time.monotonic() < deadline:
        time.sleep(0.5)
        got = api.query(query)
    return list(got)


def test_centre_returns_the_values_the_simulators_serve(fleet3: LiveFleet) -> None:
    flush = 3600.0
    assert LONG_FLUSH == "1h"
    with PrometheusAPI(fleet3.central_url) as api:
        for host in fleet3.fleet.hosts:
            sim = fleet3.simulators[host.name]
            served = _served(sim, host.vars.flintlock_metrics.path)
            # Firecracker: the delta served now is, per second, what the centre holds.
            fc = [vm for vm in sim.vms if vm.provider == "firecracker"]
            assert fc
            for vm in fc:
                for key in ("net_rx_bytes_count", "block_write_bytes"):
                    got = _await_series(
                        api,
                        f'microvm:firecracker_{key}:per_second{{host="{host.name}",uid="{vm.uid}"}}',
                    )
                    assert len(got) == 1, (host.name, vm.uid, key)
                    assert math.isclose(
                        got[0].value * flush, served[(key, vm.uid)], rel_tol=1e-12
                    ), (host.name, key)
            # Every microVM the simulator serves is counted at the centre, no more.
            count = _await_series(api, f'host:microvms:count{{host="{host.name}"}}')
            assert [s.value for s in count] == [len(sim.vms)]


def test_centre_counter_is_a_value_the_simulator_served(fleet3: LiveFleet) -> None:
    with PrometheusAPI(fleet3.central_url) as api:
        for host in fleet3.fleet.hosts:
            sim = fleet3.simulators[host.name]
            deadline = time.monotonic() + 20
            while sim.flintlockd.traffic.started("GetMicroVM") == 0:
                assert time.monotonic() < deadline
                time.sleep(0.5)
            time.sleep(2.5)  # let a non-zero value cross both hops
            selector = STARTED[:-1] + f',host="{host.name}"}}'
            got = api.query(selector)
            assert len(got) == 1
            central = got[0].value
            # Replay the simulator's deterministic traffic: the centre's value must be one
            # the simulator served at some second, and not zero.
            replay = GrpcTraffic(sim.seed)
            seen = [0]
            while replay.ticks <= sim.flintlockd.traffic.ticks:
                replay.tick()
                seen.append(replay.started("GetMicroVM"))
            assert central > 0
            assert central in seen, (host.name, central, seen[-5:])
            assert central <= sim.flintlockd.traffic.started("GetMicroVM")


def test_stopped_local_prometheus_fails_verify_naming_the_host(
    fleet_factory: FleetFactory,
) -> None:
    live = fleet_factory(2)
    live.stop_host_prometheus("e2e-2")
    deadline = time.monotonic() + 30
    while True:
        r = run_flobs("verify", "-i", inventory_of(live), "--format", "json")
        if r.code != 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.code == 1, r.stdout + r.stderr
    states = {h["name"]: h["state"] for h in json.loads(r.stdout)["hosts"]}
    assert states["e2e-1"] == "present"
    assert states["e2e-2"] in ("unreachable", "missing", "stale")
    text = run_flobs("verify", "-i", inventory_of(live))
    assert text.code == 1
    assert re.search(r"^\s+(UNREACHABLE|MISSING|STALE)\s+e2e-2: ", text.stdout, re.M), text.stdout
    assert not re.search(r"^\s+(UNREACHABLE|MISSING|STALE)\s+e2e-1: ", text.stdout, re.M)
    assert "result: FAILED (1 host(s) not present: e2e-2)" in text.stdout


def test_every_local_recording_rule_evaluates(fleet3: LiveFleet) -> None:
    failures = fleet3.local_rule_failures()
    assert failures == [], "\n".join(f"{f.host}: {f.rule}: {f.error}" for f in failures)


def test_deep_every_hosts_aggregates_equal_its_own_values(fleet3: LiveFleet) -> None:
    r = run_flobs("verify", "-i", inventory_of(fleet3), "--deep", "--format", "json")
    assert r.code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, resources.schema("verify-report.schema.json"))
    deep = doc["deep"]
    assert [d["host"] for d in deep] == ["e2e-1", "e2e-2", "e2e-3"]
    for d in deep:
        assert (d["mismatches"], d["error"]) == ([], ""), d
        assert d["series"] > 10, d
    sampled = run_flobs("verify", "-i", inventory_of(fleet3), "--deep", "--sample", "1")
    assert sampled.code == 0, sampled.stdout + sampled.stderr
    assert re.search(
        r"^deep: 1/1 hosts' aggregates match their own values \(\d+ series; "
        r"tolerance 1e-09 relative\)$",
        sampled.stdout,
        re.M,
    ), sampled.stdout
