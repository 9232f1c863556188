"""Hostile inventory label values reach a real central Prometheus exactly as written.

Prometheus 3 `$`-expands external label values (`r$01` became `r1`, `${X}` the
environment's X), so every federated series of such a host changed identity. Both
majors run: 2.x writes the values literally, 3.x needs them escaped.
"""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flobs.live.demo import LiveFleet
from flobs.live.prometheus_api import PrometheusAPI, Sample
from tests.e2e.fleet import FleetFactory
from tests.test_generate import HOSTILE_LABELS

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

# An empty value means "no label" to Prometheus, so it cannot arrive; everything else must.
HOSTILE = {k: v for k, v in HOSTILE_LABELS.items() if v} | {
    "rack": "r$01",
    "env": "${PATH}",
    "doubled": "$$",
}


@pytest.fixture(scope="module")
def hostile_fleet(module_fleet: FleetFactory) -> LiveFleet:
    return module_fleet(1, labels=HOSTILE)


# `up` of the host's own jobs and a host recording rule: both exist only on the host and
# get their labels from its external_labels (the centre's own `up{job="federate"}` takes
# them from the targets file instead, which nothing expands: it is left out).
@pytest.mark.parametrize("series", ["up", "host:grpc_server_started:rate5m"])
def test_hostile_values_arrive_unchanged(hostile_fleet: LiveFleet, series: str) -> None:
    # What the host serves on /federate is what the centre receives; checked on its own
    # because the centre adds the targets file's (literal) labels to any series lacking
    # one, which would hide a value that the host expanded to nothing.
    host = hostile_fleet.fleet.hosts[0]
    local = f"http://{host.vars.local_prometheus.listen}/federate"
    served: list[dict[str, str]] = []
    found: list[Sample] = []
    deadline = time.monotonic() + 90
    with PrometheusAPI(hostile_fleet.central_url) as api:
        while time.monotonic() < deadline and not (served and found):
            body = httpx.get(local, params={"match[]": series}, timeout=5).text
            served = [
                sample.labels
                for family in text_string_to_metric_families(body)
                for sample in family.samples
            ]
            # Series from the host's jobs carry their own `job`; rule outputs get the
            # centre's `federate` job, like any federated series without one.
            found = api.query(f'{series}{{host="e2e-1"}}')
            time.sleep(0 if served and found else 1)
    assert served, f"{local} served no {series}"
    assert found, f"no {series} for e2e-1 at the centre"
    for labels in [*served, *(s.labels for s in found)]:
        assert {k: labels.get(k) for k in HOSTILE} == HOSTILE
