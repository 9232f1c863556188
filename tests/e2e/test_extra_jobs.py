"""An inventory's extra scrape job, live: its series reach a real central Prometheus
through federation, and only the names listed in `federate` do."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flobs.live.demo import LiveFleet
from flobs.live.prometheus_api import PrometheusAPI, Sample
from tests.e2e.fleet import FleetFactory
from tests.helpers import run_flobs

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

EXPOSITION = (
    "# TYPE storage_agent_requests_total counter\n"
    "storage_agent_requests_total 42\n"
    "# TYPE storage_agent_internal_queue gauge\n"
    "storage_agent_internal_queue 7\n"
)


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    """A tiny exporter on 127.0.0.1 (the 'storage agent' of examples/extensions)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = EXPOSITION.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def fleet(module_fleet: FleetFactory, exporter: str) -> LiveFleet:
    jobs = {
        "storage-agent": {
            "scrape": {"static_configs": [{"targets": [exporter]}], "sample_limit": 100},
            "federate": ["storage_agent_requests_total"],
        }
    }
    return module_fleet(2, extra_defaults={"extra_scrape_jobs": jobs})


def _await(api: PrometheusAPI, query: str, seconds: float = 45.0, count: int = 1) -> list[Sample]:
    """The query's samples once there are ``count`` of them (or the deadline passed):
    hosts reach the centre one federation scrape apart."""
    deadline = time.monotonic() + seconds
    got = api.query(query)
    while len(got) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        got = api.query(query)
    return list(got)


def test_extra_job_series_is_federated_to_the_centre(fleet: LiveFleet) -> None:
    host = fleet.fleet.hosts[0]
    with fleet.api() as api, PrometheusAPI(f"http://{host.federation_target}") as local:
        got = _await(
            api,
            'storage_agent_requests_total{job="storage-agent"}',
            count=len(fleet.fleet.hosts),
        )
        assert sorted((s.labels["host"], s.labels["cluster"], s.value) for s in got) == [
            ("e2e-1", "e2e", 42.0),
            ("e2e-2", "e2e", 42.0),
        ]
        # Scraped on the hosts but not listed in `federate`: it stays there.
        assert [s.value for s in local.query("storage_agent_internal_queue")] == [7.0]
        assert api.query("storage_agent_internal_queue") == []


def test_the_live_tree_validates_strictly(fleet: LiveFleet) -> None:
    r = run_flobs("validate", fleet.out, "--strict", "--tools", "auto")
    assert r.code == 0, r.stdout + r.stderr
