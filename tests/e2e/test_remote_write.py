"""remote_write end to end: every local Prometheus pushes into VictoriaMetrics."""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest
import yaml

from flobs.live.prometheus_api import PrometheusAPI
from tests.e2e.fleet import FleetFactory, inventory_of
from tests.helpers import run_flobs

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

STARTED = 'grpc_server_started_total{grpc_method="GetMicroVM"}'


def test_remote_write_into_victoria_metrics(fleet_factory: FleetFactory) -> None:
    live = fleet_factory(2, mode="remote_write", extra_match=(STARTED,))
    host_cfg = yaml.safe_load((live.out / "hosts" / "e2e-1" / "prometheus.yml").read_text())
    (rw,) = host_cfg["remote_write"]
    # extra_match crosses the wire in this mode too (by metric name).
    assert "grpc_server_started_total" in rw["write_relabel_configs"][0]["regex"].split("|")
    assert rw["url"] == live.fleet.central.prometheus.remote_write.url  # type: ignore[union-attr]
    central_cfg = yaml.safe_load((live.out / "central" / "prometheus.yml").read_text())
    assert "federate" not in [j["job_name"] for j in central_cfg["scrape_configs"]]
    # Rules on the empty central TSDB would page for every host; the store's ruler runs them.
    assert "rule_files" not in central_cfg

    # --wait: right after start-up the store may not hold the hosts' newest samples yet
    # (--deep then compares 0 series, which is a failure, not a pass).
    # The hosts' slower rules produce their first samples a few rounds after start:
    # wait (bounded) until every host has more than 10 series to compare.
    deadline = time.monotonic() + 120
    while True:
        r = run_flobs(
            "verify", "-i", inventory_of(live), "--out", live.out, "--deep", "--format", "json",
            "--wait", "60s",
        )  # fmt: skip
        assert r.code == 0, r.stdout + r.stderr
        report = json.loads(r.stdout)
        if all(d["series"] > 10 for d in report["deep"]) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert report["mode"] == "remote_write"
    assert report["prometheus"] == live.central_url
    # What VictoriaMetrics holds is what each host computed, sample for sample.
    for d in report["deep"]:
        assert (d["mismatches"], d["error"]) == ([], ""), d
        assert d["series"] > 10, d
    assert [(h["name"], h["state"]) for h in report["hosts"]] == [
        ("e2e-1", "present"),
        ("e2e-2", "present"),
    ]

    with PrometheusAPI(live.central_url) as api:
        # Only the series contract crosses the wire (write_relabel_configs keep).
        assert api.query('count({__name__=~"node_.+"})') == []
        assert api.query('count({__name__=~"firecracker_.+"})') == []
        for host in live.fleet.hosts:
            sim = live.simulators[host.name]
            v = host.vars.flintlock_metrics
            body = httpx.get(f"http://{v.endpoint}{v.path}", timeout=5).text
            vm = next(vm for vm in sim.vms if vm.provider == "firecracker")
            line = next(
                ln
                for ln in body.splitlines()
                if ln.startswith("net_tx_bytes_count{") and vm.uid in ln
            )
            served = int(line.rsplit(" ", 1)[1])
            got = api.query(
                f"microvm:firecracker_net_tx_bytes_count:per_second"
                f'{{host="{host.name}",uid="{vm.uid}"}}'
            )
            assert len(got) == 1
            assert math.isclose(got[0].value * 3600, served, rel_tol=1e-12)
            count = api.query(f'host:microvms:count{{host="{host.name}"}}')
            assert [s.value for s in count] == [len(sim.vms)]
            pushed = api.query(STARTED[:-1] + f',host="{host.name}"}}')
            assert len(pushed) == 1
            assert 0 <= pushed[0].value <= sim.flintlockd.traffic.started("GetMicroVM")
