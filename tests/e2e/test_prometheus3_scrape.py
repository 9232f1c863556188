"""Prometheus 3 scrapes flintlock-metrics exactly as flintlock-metrics serves it.

flintlock-metrics sets no Content-Type, so Go's net/http sniffs one from the first
write: `text/plain; charset=utf-8` for text, nothing for an empty body (no microVMs),
and `application/octet-stream` when a control byte (e.g. in a microVM name) is in the
first 512 bytes. Prometheus 3.16 (model/textparse) takes text/plain and skips an empty
body, but refuses an unsupported type unless the job sets `fallback_scrape_protocol`:
the generated job does and scrapes all three; the same job without it fails the third.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from flobs import yamlio
from flobs.generate import generate
from flobs.live.processes import Supervisor
from flobs.sim.host import go_sniffed_content_type
from tests.conftest import EXAMPLE_INVENTORY, free_port, require_major

pytestmark = [pytest.mark.e2e, pytest.mark.tools]


BODIES = {
    "no-microvms": b"",
    "text": b'block_read_bytes{namespace="ns",name="vm-1",uid="u1"} 42\n',
    "control-byte": b'block_read_bytes{namespace="ns",name="vm\x01",uid="u2"} 42\n',
}


@contextmanager
def flintlock_metrics(body: bytes) -> Iterator[str]:
    """An endpoint answering ``body`` with the headers Go's net/http would send."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            kind = go_sniffed_content_type(body)
            if kind is not None:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _flintlock_metrics_job(tmp_path: Path, target: str) -> dict[str, Any]:
    out = tmp_path / "out"
    generate(EXAMPLE_INVENTORY, out)  # fl-eu1-a-01 is written for Prometheus 3.13
    config = yamlio.load((out / "hosts" / "fl-eu1-a-01" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "flintlock-metrics"]
    job["static_configs"][0]["targets"] = [target]
    return dict(job)


def _scrape_health(tmp_path: Path, name: str, job: dict[str, Any]) -> dict[str, Any]:
    prometheus = require_major("prometheus", 3)
    work = tmp_path / name
    work.mkdir()
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}
    (work / "prometheus.yml").write_text(yamlio.dump(config))
    port = free_port()
    sup = Supervisor(work / "logs")
    try:
        sup.start(
            "prometheus",
            [
                prometheus,
                f"--config.file={work / 'prometheus.yml'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={work / 'data'}",
            ],
        )
        sup.wait_ready("prometheus", f"http://127.0.0.1:{port}/-/ready")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5).json()
            active = targets["data"]["activeTargets"]  # empty until discovery has run
            if active and active[0]["health"] != "unknown":
                return dict(active[0])
            time.sleep(0.5)
        raise AssertionError(f"{name}: the target was never scraped")
    finally:
        sup.stop_all()


@pytest.mark.parametrize("answer", sorted(BODIES))
def test_generated_job_scrapes_every_answer_flintlock_metrics_gives(
    tmp_path: Path, answer: str
) -> None:
    with flintlock_metrics(BODIES[answer]) as target_address:
        job = _flintlock_metrics_job(tmp_path, target_address)
        assert job["fallback_scrape_protocol"] == "PrometheusText0.0.4"
        target = _scrape_health(tmp_path, answer, job)
    assert (target["health"], target["lastError"]) == ("up", "")


def test_without_the_fallback_prometheus_3_refuses_an_octet_stream_answer(
    tmp_path: Path,
) -> None:
    assert go_sniffed_content_type(BODIES["control-byte"]) == "application/octet-stream"
    with flintlock_metrics(BODIES["control-byte"]) as target_address:
        job = _flintlock_metrics_job(tmp_path, target_address)
        del job["fallback_scrape_protocol"]  # the job as flobs wrote it before
        target = _scrape_health(tmp_path, "old", job)
    assert target["health"] == "down"
    assert "unsupported Content-Type" in target["lastError"], target["lastError"]
