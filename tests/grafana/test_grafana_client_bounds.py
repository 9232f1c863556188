"""The Grafana client's requests are bounded: a total deadline and a size cap.

Against a real server on loopback that drips or floods: a GET that never completes
gives up within (attempts x timeout), a write whose answer drips is an unknown
outcome after one timeout (never re-sent blindly), a flood stops at the cap.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from flobs.grafana.client import (
    Credentials,
    GrafanaClient,
    GrafanaUnreachable,
    OutcomeUnknown,
    RetryPolicy,
)
from tests.live.hostile_server import (
    Handler,
    HostileServer,
    claims_700_mb,
    drip_body,
    drip_headers,
    hostile_server,
)

CREDS = Credentials(token="glsa_bounds_test_token_0001")


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile_server() as s:
        yield s


def _client(server: HostileServer, **kwargs: object) -> GrafanaClient:
    return GrafanaClient(
        server.url,
        CREDS,
        timeout=1.0,
        retry=RetryPolicy(attempts=1),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("route", [drip_body(b'{"a": "'), drip_headers], ids=["body", "headers"])
def test_a_dripping_get_gives_up_at_the_deadline(server: HostileServer, route: object) -> None:
    server.routes["/api/health"] = route  # type: ignore[assignment]
    started = time.monotonic()
    with pytest.raises(GrafanaUnreachable) as info, _client(server) as client:
        client.get("/api/health")
    assert time.monotonic() - started < 2.5
    message = info.value.message
    assert message.startswith(f"GET {server.url}/api/health: giving up after 1 attempt in ")
    assert message.endswith("s; last: DeadlinePassed: no complete answer within 1s")


def test_a_dripping_write_is_an_unknown_outcome_after_one_deadline(server: HostileServer) -> None:
    server.routes["/api/dashboards/db"] = drip_body(b'{"status": "')
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown) as info, _client(server) as client:
        client.post("/api/dashboards/db", {"dashboard": {}})
    assert time.monotonic() - started < 2.5
    assert info.value.message == (
        f"POST {server.url}/api/dashboards/db: the answer was lost (DeadlinePassed: "
        "no complete answer within 1s); the change may or may not have been applied"
    )


def test_a_flood_stops_at_the_size_cap(server: HostileServer) -> None:
    def flood(h: Handler) -> None:
        h.head()
        h.raw(b'{"x": "')
        while True:
            h.raw(b"a" * 65536)

    server.routes["/api/search"] = flood
    with pytest.raises(GrafanaUnreachable) as info, _client(server, max_bytes=1024 * 1024) as c:
        c.get("/api/search")
    assert info.value.message == (
        f"GET {server.url}/api/search: ResponseTooLarge: the answer is larger than the 1 MiB limit"
    )


def test_a_700_mb_answer_is_refused_unread(server: HostileServer) -> None:
    server.routes["/api/search"] = claims_700_mb
    started = time.monotonic()
    with pytest.raises(GrafanaUnreachable) as info, _client(server) as client:
        client.get("/api/search")
    assert time.monotonic() - started < 2.0
    assert info.value.message == (
        f"GET {server.url}/api/search: ResponseTooLarge: the answer is 734003200 bytes, "
        "more than the 32 MiB limit"
    )
