"""Logs per host against a real VictoriaLogs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flobs.live.processes import Supervisor
from flobs.live.signals import VictoriaLogsLogs, check_host_signals
from tests.conftest import free_port, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def victorialogs(tmp_path: Path) -> Iterator[str]:
    binary = require_tool("victoria-logs")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sup = Supervisor(tmp_path / "logs")
    sup.start(
        "victoria-logs",
        [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={tmp_path / 'vl'}"],
    )
    try:
        sup.wait_ready("victoria-logs", f"{url}/health")
        yield url
    finally:
        sup.stop_all()


def _ingest(url: str, rows: list[dict[str, str]]) -> None:
    body = "\n".join(json.dumps(r) for r in rows)
    httpx.post(
        f"{url}/insert/jsonline",
        params={"_stream_fields": "cluster,host,level", "_time_field": "_time"},
        content=body,
        timeout=10,
    ).raise_for_status()
    httpx.get(f"{url}/internal/force_flush", timeout=10).raise_for_status()


def _at(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - seconds_ago)) + "Z"


def test_victorialogs_counts_by_level_and_finds_trace_ids(
    victorialogs: str, request: pytest.FixtureRequest
) -> None:
    _ingest(
        victorialogs,
        [
            {"_time": _at(5), "_msg": "started", "cluster": "c", "host": "h-1", "level": "info"},
            {"_time": _at(4), "_msg": "ok", "cluster": "c", "host": "h-1", "level": "info"},
            {
                "_time": _at(3),
                "_msg": "create failed",
                "cluster": "c",
                "host": "h-1",
                "level": "error",
                "trace_id": TRACE,
            },
            {"_time": _at(900), "_msg": "old", "cluster": "c", "host": "h-2", "level": "warning"},
        ],
    )
    logs = VictoriaLogsLogs(victorialogs)
    request.addfinalizer(logs.close)
    deadline = time.monotonic() + 20
    while (got := logs.host_logs("h-1", 300)).lines < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (got.lines, got.by_level, got.trace_ids) == (3, {"error": 1, "info": 2}, (TRACE,))
    assert got.newest_age is not None and 2 <= got.newest_age < 30
    assert logs.host_logs("h-2", 300).lines == 0  # older than the window
    assert logs.host_logs("h-2", 3600).by_level == {"warning": 1}
    (h1, h2) = check_host_signals(["h-1", "h-2"], logs, None, window=300)
    assert (h1.lost, h2.lost) == ([], ["logs"])
