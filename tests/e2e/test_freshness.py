"""Per-host freshness from real sample timestamps, on Prometheus 2.x, 3.x and VictoriaMetrics.

One host's local Prometheus is killed; that host, and only that host, must fail
verification within the stated limit, and the healthy hosts must never look stale.
"""

from __future__ import annotations

import time

import pytest

from flobs.live.demo import LiveFleet, Mode
from flobs.live.verify import VerifyReport, verify
from tests.e2e.fleet import FleetFactory

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

# The stated limit in these tests (intervals are 1 s): remote_write adds the 5 s batch
# deadline and the store's 1 s visibility delay on top of a few intervals.
STALE_AFTER = {"federation": 15.0, "remote_write": 20.0}
# Detection may take one more verify round and one federate scrape beyond the limit.
SLACK = 5.0


def _poll(live: LiveFleet, stale_after: float) -> VerifyReport:
    with live.api() as api:
        return verify(live.fleet, api, stale_after=stale_after, hosts_only=True)


def _states(report: VerifyReport) -> dict[str, str]:
    return {h.name: h.state for h in report.hosts}


@pytest.mark.parametrize("mode", ["federation", "remote_write"])
def test_only_the_killed_host_goes_stale_within_the_limit(
    fleet_factory: FleetFactory, mode: Mode
) -> None:
    # fleet_factory runs this on Prometheus 2.x and 3.x (tests/e2e/conftest.py).
    live = fleet_factory(3, mode=mode)
    limit = STALE_AFTER[mode]

    # Healthy: real sample ages, small and not all the evaluation time (the old bug
    # read exactly 0.0 for every host on Prometheus).
    ages: list[float] = []
    for _ in range(4):
        report = _poll(live, limit)
        assert _states(report) == dict.fromkeys(("e2e-1", "e2e-2", "e2e-3"), "present"), [
            (h.name, h.detail) for h in report.hosts
        ]
        ages += [h.age_seconds for h in report.hosts if h.age_seconds is not None]
        time.sleep(1)
    assert len(ages) == 12
    assert all(0 <= a < limit for a in ages), ages
    assert any(a > 0 for a in ages), ages

    live.stop_host_prometheus("e2e-2")
    killed = time.monotonic()
    detected: float | None = None
    # Until detected (or past the limit), then a few more rounds: it stays detected.
    while time.monotonic() - killed < (limit + SLACK if detected is None else detected + 5):
        report = _poll(live, limit)
        states = _states(report)
        # The healthy hosts never go stale, before or after the other host failed.
        assert states["e2e-1"] == states["e2e-3"] == "present", [
            (h.name, h.detail) for h in report.hosts
        ]
        if detected is None and states["e2e-2"] != "present":
            detected = time.monotonic() - killed
            assert states["e2e-2"] in ("stale", "missing", "unreachable"), states
        time.sleep(1)
    assert detected is not None, "e2e-2 was never reported"
    assert detected <= limit + SLACK, detected
    assert _states(report)["e2e-2"] != "present"
