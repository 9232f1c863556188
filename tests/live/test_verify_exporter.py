"""The --every exporter's HTTP side: a port it cannot bind, idle connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from flobs.live import verify_exporter
from flobs.live.verify import VerifyReport
from flobs.live.verify_exporter import IDLE_SECONDS, VerifyExporter
from tests.conftest import EXAMPLE_INVENTORY
from tests.helpers import run_flobs


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_a_listen_port_in_use_is_a_system_failure_like_simulates(taken_port: int) -> None:
    r = run_flobs(
        "verify", "-i", EXAMPLE_INVENTORY, "--every", "1m", "--listen", f"127.0.0.1:{taken_port}"
    )
    assert (r.code, r.stdout) == (3, "")
    assert r.stderr == (
        f"error: --listen 127.0.0.1:{taken_port}: Address already in use\n"
        "    hint: another process already listens there; pick a free port\n"
    )


def test_a_connection_that_sends_nothing_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert verify_exporter._Handler.timeout == IDLE_SECONDS
    monkeypatch.setattr(verify_exporter._Handler, "timeout", 0.5)
    exporter = VerifyExporter(
        lambda: VerifyReport("http://p", "federation", 15.0), ["h"], 3600, ("127.0.0.1", 0)
    )
    serving = threading.Thread(target=exporter.serve)
    serving.start()
    try:
        port = int(exporter.address.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.settimeout(20)
            started = time.monotonic()
            assert idle.recv(1) == b""  # the server hung up: no thread waits on it forever
            assert time.monotonic() - started < 10
        with socket.create_connection(("127.0.0.1", port)) as scrape:
            scrape.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            scrape.settimeout(20)
            assert scrape.recv(12) == b"HTTP/1.0 200"  # still serving
    finally:
        exporter.stop()
        serving.join(20)
    assert not serving.is_alive()
