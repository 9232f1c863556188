"""--deep: the centre's newest sample against the host's sample with the same timestamp."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from flobs.inventory import load_fleet
from flobs.live.deep import deep_check
from flobs.live.demo import demo_inventory, write_inventory
from flobs.live.prometheus_api import PrometheusAPI
from flobs.model import Fleet


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    path = tmp_path / "inventory.yaml"
    write_inventory(demo_inventory(3, tmp_path, first_address="127.0.6.11", cluster="t"), path)
    return load_fleet(path).fleet


def matrix(*series: tuple[dict[str, str], list[tuple[float, float]]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": m, "values": [[t, repr(v)] for t, v in points]} for m, points in series
            ],
        },
    }


def api(answer: Any, seen: list[str] | None = None) -> PrometheusAPI:
    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params.get("query", "")
        if seen is not None:
            seen.append(q)
        return httpx.Response(200, json=answer(q))

    return PrometheusAPI("http://p.test", transport=httpx.MockTransport(handler))


LOCAL = {"__name__": "host:microvms:count", "job": "flintlock-metrics"}
RATE = {"__name__": "microvm:net_rx:per_second", "uid": "u1"}


def central_of(host: str, values: dict[float, float], skipped: bool = False) -> dict[str, Any]:
    ext = {"cluster": "t", "host": host, "rack": "r01" if host != "t-3" else "r02"}
    points = sorted(values.items())
    return matrix(
        ({**LOCAL, **ext}, points[:-1] if skipped else points), ({**RATE, **ext}, [(100.0, 0.5)])
    )


def test_equal_values_at_the_same_timestamp_match_and_skipped_samples_are_fine(
    fleet: Fleet,
) -> None:
    # The centre missed the host's newest sample (scrape jitter): its newest is 101, which
    # the host has too, with the same value. Not a mismatch.
    local = {100.0: 3.0, 101.0: 3.0, 102.0: 4.0}
    seen: list[str] = []
    central = api(
        lambda q: central_of(q.split('host="')[1].split('"')[0], local, skipped=True), seen
    )
    result = deep_check(
        fleet,
        central,
        local_api=lambda h: api(
            lambda q: matrix((LOCAL, sorted(local.items())), (RATE, [(100.0, 0.5)]))
        ),
    )
    assert [(d.host, d.series, d.mismatches, d.error) for d in result] == [
        ("t-1", 2, [], ""),
        ("t-2", 2, [], ""),
        ("t-3", 2, [], ""),
    ]
    assert seen[0].startswith('{__name__=~"host:.+|microvm:.+",host="t-1"}[')


def test_a_different_value_names_host_series_and_both_values(fleet: Fleet) -> None:
    central = api(
        lambda q: central_of(q.split('host="')[1].split('"')[0], {100.0: 3.0, 101.0: 7.0})
    )
    result = deep_check(
        fleet,
        central,
        sample=1,
        rng=random.Random(4),
        local_api=lambda h: api(
            lambda q: matrix((LOCAL, [(100.0, 3.0), (101.0, 3.0)]), (RATE, [(100.0, 0.5)]))
        ),
    )
    (d,) = result
    assert not d.ok
    assert [m.describe(d.host) for m in d.mismatches] == [
        f'{d.host}: host:microvms:count{{job="flintlock-metrics"}} at 101.000: centre 7.0, host 3.0'
    ]


def test_a_series_missing_at_the_centre_is_named(fleet: Fleet) -> None:
    central = api(lambda q: matrix())
    (d, *_) = deep_check(
        fleet,
        central,
        local_api=lambda h: api(lambda q: matrix((LOCAL, [(100.0, 3.0)]))),
    )
    assert [m.describe(d.host) for m in d.mismatches] == [
        't-1: host:microvms:count{job="flintlock-metrics"} is missing at the centre (host: 3.0)'
    ]


def test_an_unreachable_local_prometheus_is_that_hosts_error(fleet: Fleet) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    central = api(lambda q: matrix())
    result = deep_check(
        fleet,
        central,
        local_api=lambda h: PrometheusAPI("http://l.test", transport=httpx.MockTransport(refuse)),
    )
    assert all(not d.ok for d in result)
    assert result[0].error.startswith("cannot reach Prometheus at http://l.test")


def test_job_and_instance_the_federate_scrape_added_are_not_the_hosts(fleet: Fleet) -> None:
    bare = {"__name__": "host:net:per_second"}
    added = {"job": "federate", "instance": "127.0.6.11:9090", "cluster": "t", "rack": "r01"}
    central = api(
        lambda q: matrix(
            ({**bare, **added, "host": q.split('host="')[1].split('"')[0]}, [(5.0, 2.0)])
        )
    )
    result = deep_check(
        fleet, central, sample=2, local_api=lambda h: api(lambda q: matrix((bare, [(5.0, 2.0)])))
    )
    assert [(d.series, d.mismatches) for d in result] == [(1, []), (1, [])]
