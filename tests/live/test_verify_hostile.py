"""`flobs verify` against hostile and echoing servers, through the real entry point.

The bearer token is set to a distinctive value and the server echoes it back in
every place a server can: a label value (so it would reach the report), a query
error message, a response header (so httpx/httpcore debug logs carry it). No byte
of it may appear in stdout, stderr or the logs, in text or JSON.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_INVENTORY
from tests.helpers import run_flobs
from tests.live.hostile_server import Handler, HostileServer, drip_body, hostile_server

TOKEN = "PromTok-Distinctive-e8d71c05"
Q = "/api/v1/query"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile_server() as s:
        yield s


def _vector(*series: tuple[dict[str, str], str]) -> dict[str, object]:
    result = [{"metric": m, "value": [1, v]} for m, v in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def echo_the_token(h: Handler) -> None:
    """A centre that echoes the Authorization header everywhere it can: as a host
    label, in the federation target's last error, in a response header."""
    auth = h.headers.get("Authorization", "")
    if urlsplit(h.path).path == "/api/v1/targets":
        target = {
            "labels": {"job": "federate", "host": "fl-eu1-a-01"},
            "lastError": f"401 for {auth}",
        }
        body: object = {"status": "success", "data": {"activeTargets": [target]}}
    else:
        query = parse_qs(urlsplit(h.path).query).get("query", [""])[0]
        if query.startswith("count by (host)"):
            body = _vector(({"host": auth}, "3"), ({"host": "fl-eu1-a-01"}, "3"))
        elif query.startswith('max by (host) (up{job="federate"})'):
            body = _vector(({"host": "fl-eu1-a-01"}, "0"))
        else:
            body = _vector()
    data = json.dumps(body).encode()
    h.head(200, "application/json", Content_Length=str(len(data)), X_Echo=auth)
    h.raw(data)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_verify_never_prints_the_bearer_token(server: HostileServer, fmt: str) -> None:
    server.routes[Q] = server.routes["/api/v1/targets"] = echo_the_token
    result = run_flobs(
        "verify",
        "-i",
        EXAMPLE_INVENTORY,
        "--prometheus",
        server.url,
        "--format",
        fmt,
        env={"FLOBS_PROMETHEUS_TOKEN": TOKEN},
    )
    assert any(seen[2].get("Authorization") == f"Bearer {TOKEN}" for seen in server.seen)
    text = result.stdout + result.stderr
    assert result.code == 1, text
    assert "401 for ***" in text  # the echo was there, and hidden
    assert TOKEN not in text
    if fmt == "json":
        report = json.loads(result.stdout)
        assert report["unexpected_hosts"] == ["***"]
        assert report["hosts"][0]["detail"].endswith(": 401 for ***")


def test_a_failing_host_query_is_exit_3_and_shows_no_token(server: HostileServer) -> None:
    def refuse(h: Handler) -> None:
        auth = h.headers.get("Authorization", "")
        h.answer(400, {"status": "error", "errorType": "bad_data", "error": f"bad header {auth}"})

    server.routes[Q] = refuse
    result = run_flobs(
        "verify",
        "-i",
        EXAMPLE_INVENTORY,
        "--prometheus",
        server.url,
        env={"FLOBS_PROMETHEUS_TOKEN": TOKEN},
    )
    assert result.code == 3
    assert result.stderr.startswith(
        f"error: Prometheus at {server.url}{Q}: the query failed: bad_data: bad header ***\n"
    )
    assert TOKEN not in result.stdout + result.stderr


def test_httpx_and_httpcore_debug_logs_carry_no_token(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flobs.cli import _register, app

    _register()
    server.routes[Q] = server.routes["/api/v1/targets"] = echo_the_token
    monkeypatch.setenv("FLOBS_PROMETHEUS_TOKEN", TOKEN)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        result = CliRunner().invoke(
            app, ["verify", "-i", str(EXAMPLE_INVENTORY), "--prometheus", server.url]
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    logged = logs.getvalue()
    assert "receive_response_headers" in logged and "HTTP Request: GET" in logged
    assert "(b'X-Echo', b'***')" in logged  # the echo was logged, and hidden
    assert TOKEN not in logged + result.output, logged


def test_the_command_deadline_ends_verify_against_a_dripping_server(server: HostileServer) -> None:
    server.routes[Q] = drip_body()
    result = run_flobs(
        "--deadline", "2", "verify", "-i", EXAMPLE_INVENTORY, "--prometheus", server.url
    )
    # From the first request (the deadline starts a little earlier, after start-up).
    took = time.monotonic() - server.first_at
    assert result.code == 3, result.stderr
    assert took < 3.5, took  # 2 s deadline, then exit
    assert result.stderr.splitlines()[0] == (
        f"error: {server.url}{Q}: the command's deadline of 2s passed"
    )


def test_a_malformed_answer_is_exit_3_naming_the_url_not_an_internal_error(
    server: HostileServer,
) -> None:
    server.routes[Q] = lambda h: h.answer(
        200,
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]},
        },
    )
    result = run_flobs("verify", "-i", EXAMPLE_INVENTORY, "--prometheus", server.url)
    assert result.code == 3
    assert "internal error" not in result.stderr
    assert result.stderr.startswith(
        f"error: Prometheus at {server.url}{Q}: not a Prometheus API answer: "
        "data.result[0]: the sample value x is not a number\n"
    )
