"""Hostile log/trace stores: garbage, silence, dripping, huge or odd answers.

Never a hang past --timeout, never a traceback: exit 3 naming the store, or (for odd
but well-formed answers) no data counted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flobs.errors import RemoteError
from flobs.live.signals import LokiLogs, TempoTraces
from tests.e2e.fake_prometheus import Answering, healthy
from tests.helpers import run_flobs

Behaviour = Callable[[socket.socket], None]


def _silent(conn: socket.socket) -> None:
    time.sleep(30)


def _drip_headers(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"a" * 60:
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


def _answer(status: str, body: bytes, kind: str = "application/json") -> Behaviour:
    def send(conn: socket.socket) -> None:
        head = f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)

    return send


@pytest.fixture
def hostile() -> Iterator[Callable[[Behaviour], str]]:
    servers: list[socket.socket] = []

    def start(behaviour: Behaviour) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        servers.append(srv)

        def loop() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    with contextlib.suppress(OSError):
                        behaviour(conn)

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}"

    yield start
    for srv in servers:
        srv.close()


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (_silent, "no complete answer within 1s"),
        (_drip_headers, "no complete answer within 1s"),
        (_answer("200 OK", b"<html>proxy login</html>", "text/html"), "not JSON: '<html>proxy"),
        (_answer("200 OK", b'{"data": [1, 2]}'), "query_range did not answer with streams"),
        (_answer("502 Bad Gateway", b"{}"), "answered HTTP 502"),
        (_answer("401 Unauthorized", b""), "refused the request (HTTP 401)"),
    ],
)
def test_loki_failures_are_bounded_remote_errors(
    hostile: Callable[[Behaviour], str], behaviour: Behaviour, message: str
) -> None:
    url = hostile(behaviour)
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        LokiLogs(url, timeout=1.0).host_logs("h", 60)
    assert time.monotonic() - started < 6  # 1 s, plus a loaded CI machine
    assert message in str(caught.value)
    assert url in str(caught.value)


def test_odd_but_well_formed_answers_count_nothing(hostile: Callable[[Behaviour], str]) -> None:
    streams = (
        b'{"status":"success","data":{"resultType":"streams","result":['
        b'5, {"stream": 7, "values": [["x", "l"], "junk", [1], ["1", {"a": 1}]]}]}}'
    )
    got = LokiLogs(hostile(_answer("200 OK", streams)), timeout=2).host_logs("h", 60)
    assert (got.lines, got.trace_ids) == (1, ())  # only ["1", {...}] is an entry
    traces = b'{"traces": [5, {"traceID": 1, "spanSets": [7, {"matched": "x", "spans": 3}]}]}'
    tempo = TempoTraces(hostile(_answer("200 OK", traces)), timeout=2)
    assert (tempo.host_traces("h", 60).spans, tempo.host_traces("h", 60).errors) == (0, 0)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    from flobs.live.demo import demo_inventory, write_inventory

    path = tmp_path / "inventory.yaml"
    write_inventory(demo_inventory(2, tmp_path, first_address="127.0.7.11", cluster="t"), path)
    return path


def test_cli_dripping_tempo_exits_3_within_the_timeout(
    inventory: Path, hostile: Callable[[Behaviour], str], answering_server: type[Answering]
) -> None:
    answering_server.answer = staticmethod(lambda q: (200, healthy(q, ["t-1", "t-2"])))
    tempo = hostile(_drip_headers)
    started = time.monotonic()
    r = run_flobs(
        "verify",
        "-i",
        inventory,
        "--prometheus",
        answering_server.url,  # type: ignore[attr-defined]
        "--tempo",
        tempo,
        "--timeout",
        "2",
        env={"FLOBS_PROMETHEUS_TOKEN": "tok-never-shown"},
    )
    assert time.monotonic() - started < 15
    assert (r.code, r.stdout) == (3, "")
    assert f"Tempo at {tempo}/api/search: no complete answer within 2s" in r.stderr
    assert "Traceback" not in r.stderr and "tok-never-shown" not in r.stderr
