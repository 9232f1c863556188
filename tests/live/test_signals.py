"""Logs and traces per host against protocol-faithful Loki and Tempo fakes (real HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from flobs import resources
from flobs.errors import RemoteError
from flobs.live.signals import LokiLogs, TempoTraces, check_host_signals
from tests.e2e.fake_prometheus import Answering, healthy
from tests.helpers import run_flobs
from tests.live.fake_stores import FakeLoki, FakeTempo, Span

NOW = time.time()
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def ns(seconds_ago: float) -> int:
    return int((NOW - seconds_ago) * 1e9)


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    fake = FakeLoki()
    yield fake
    fake.close()


@pytest.fixture
def tempo() -> Iterator[FakeTempo]:
    fake = FakeTempo()
    yield fake
    fake.close()


def _fill(loki: FakeLoki, tempo: FakeTempo) -> None:
    base = {"cluster": "t", "host": "t-1", "job": "flintlockd"}
    loki.push({**base, "level": "info"}, ns(5), '{"level":"info","msg":"started"}')
    loki.push({**base, "level": "info"}, ns(4), '{"level":"info","msg":"ok"}')
    loki.push(
        {**base, "level": "error"},
        ns(3),
        f'{{"level":"error","msg":"create failed","trace_id":"{TRACE}"}}',
    )
    loki.push({**base, "host": "t-2", "level": "warning"}, ns(900), "level=warning msg=old")
    tempo.add(Span(TRACE, "00f067aa0ba902b7", "CreateMicroVM", ns(3), 2_000_000, "t-1"))
    tempo.add(Span(TRACE, "00f067aa0ba902b8", "plan step", ns(3) + 1000, 1000, "t-1", error=True))
    tempo.add(Span("1" * 32, "1" * 16, "GetMicroVM", ns(2), 1000, "t-1"))


def test_loki_counts_lines_by_level_with_ages_and_trace_ids(
    loki: FakeLoki, tempo: FakeTempo
) -> None:
    _fill(loki, tempo)
    client = LokiLogs(loki.url, clock=lambda: NOW)
    got = client.host_logs("t-1", 300)
    assert (got.lines, got.by_level, got.trace_ids) == (3, {"error": 1, "info": 2}, (TRACE,))
    assert got.newest_age == pytest.approx(3, abs=0.01)
    # t-2's only line is older than the window.
    assert client.host_logs("t-2", 300).lines == 0
    assert client.host_logs("t-2", 1000).by_level == {"warning": 1}
    (_, path, params) = loki.requests[0]
    assert path == "/loki/api/v1/query_range"
    assert params["query"] == '{host="t-1"}'
    assert params["direction"] == "backward"
    assert int(params["end"]) - int(params["start"]) == 300 * 10**9


def test_tempo_counts_spans_and_errors_and_resolves_ids(loki: FakeLoki, tempo: FakeTempo) -> None:
    _fill(loki, tempo)
    client = TempoTraces(tempo.url, clock=lambda: NOW)
    got = client.host_traces("t-1", 300)
    assert (got.spans, got.errors) == (3, 1)
    assert got.newest_age == pytest.approx(2, abs=0.01)
    assert client.host_traces("t-2", 300).spans == 0
    assert client.has_trace(TRACE)
    assert not client.has_trace("f" * 32)
    assert not client.has_trace("not-hex")  # never sent as a path
    queries = [p["q"] for _, path, p in tempo.requests if path == "/api/search"]
    assert queries[:2] == [
        '{ resource.host.name = "t-1" }',
        '{ resource.host.name = "t-1" && status = error }',
    ]


def test_per_host_signals_and_correlation(loki: FakeLoki, tempo: FakeTempo) -> None:
    _fill(loki, tempo)
    logs = LokiLogs(loki.url, clock=lambda: NOW)
    traces = TempoTraces(tempo.url, clock=lambda: NOW)
    t1, t2 = check_host_signals(["t-1", "t-2"], logs, traces, window=300)
    assert t1.lost == []
    assert t1.correlation is not None
    assert t1.correlation.detail == f"trace {TRACE} from the logs resolves"
    assert (t1.spans, t1.error_spans, t1.log_levels) == (3, 1, {"error": 1, "info": 2})
    assert t2.lost == ["logs", "traces"]
    assert t2.correlation is None  # no lines, nothing to follow
    # A trace id in the logs that the trace store does not know breaks correlation.
    loki.push({"host": "t-2", "level": "info"}, ns(1), f"trace_id={'a' * 32} msg=x")
    tempo.add(Span("b" * 32, "b" * 16, "GetMicroVM", ns(1), 1000, "t-2"))
    (t2,) = check_host_signals(["t-2"], logs, traces, window=300)
    assert t2.lost == ["correlation"]
    assert t2.correlation is not None
    assert t2.correlation.detail == f"trace ids from the logs do not resolve in Tempo: {'a' * 32}"


def test_garbage_answers_are_remote_errors(loki: FakeLoki) -> None:
    client = LokiLogs(loki.url + "/nothing-here")
    with pytest.raises(
        RemoteError, match=r"Loki at .*/nothing-here/loki/api/v1/query_range answered HTTP 404"
    ):
        client.host_logs("t-1", 60)
    bad = LokiLogs(loki.url, host_label="bad label")
    with pytest.raises(RemoteError, match=r"answered HTTP 400, not JSON: 'parse error"):
        bad.host_logs("t-1", 60)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    from flobs.live.demo import demo_inventory, write_inventory

    path = tmp_path / "inventory.yaml"
    write_inventory(demo_inventory(2, tmp_path, first_address="127.0.5.11", cluster="t"), path)
    return path


def test_cli_names_the_host_and_the_signals_it_lost(
    inventory: Path, loki: FakeLoki, tempo: FakeTempo, answering_server: type[Answering]
) -> None:
    global NOW
    NOW = time.time()
    _fill(loki, tempo)
    answering_server.answer = staticmethod(lambda q: (200, healthy(q, ["t-1", "t-2"])))
    url = answering_server.url  # type: ignore[attr-defined]
    args = (
        "verify",
        "-i",
        inventory,
        "--prometheus",
        url,
        "--loki",
        loki.url,
        "--tempo",
        tempo.url,
    )
    r = run_flobs(*args)
    assert r.code == 1, r.stdout + r.stderr
    assert f"logs: 1/2 hosts (Loki {loki.url})\n" in r.stdout
    assert f"traces: 1/2 hosts (Tempo {tempo.url})\n" in r.stdout
    assert "  MISSING      t-2: logs: no log lines in Loki in the last 300s\n" in r.stdout
    assert "  MISSING      t-2: traces: no spans in Tempo in the last 300s\n" in r.stdout
    assert "1 host(s) losing signals (t-2: logs, traces)" in r.stdout
    doc = json.loads(run_flobs(*args, "--format", "json").stdout)
    jsonschema.validate(doc, resources.schema("verify-report.schema.json"))
    assert [(s["host"], s["spans"], s["log_levels"]) for s in doc["signals"]] == [
        ("t-1", 3, {"error": 1, "info": 2}),
        ("t-2", 0, {}),
    ]
    # Once t-2's logs and spans arrive, verification passes.
    loki.push({"host": "t-2", "level": "info"}, int(time.time() * 1e9), "level=info msg=hi")
    tempo.add(Span("c" * 32, "c" * 16, "GetMicroVM", int(time.time() * 1e9), 1000, "t-2"))
    ok = run_flobs(*args)
    assert ok.code == 0, ok.stdout
    assert ok.stdout.rstrip().endswith("result: OK")


def test_cli_unreachable_loki_exits_3_without_traceback(
    inventory: Path, answering_server: type[Answering]
) -> None:
    from tests.conftest import free_port

    answering_server.answer = staticmethod(lambda q: (200, healthy(q, ["t-1", "t-2"])))
    url = answering_server.url  # type: ignore[attr-defined]
    loki = f"http://127.0.0.1:{free_port()}"
    r = run_flobs("verify", "-i", inventory, "--prometheus", url, "--loki", loki)
    assert (r.code, r.stdout) == (3, "")
    assert f"cannot reach Loki at {loki}/loki/api/v1/query_range" in r.stderr
    assert "Traceback" not in r.stderr


def test_jaeger_counts_this_hosts_spans_and_errors_and_resolves_ids() -> None:
    import httpx

    from flobs.live.signals import JaegerTraces

    def span(span_id: str, pid: str, start_ago: float, **tags: object) -> dict[str, object]:
        return {
            "traceID": TRACE,
            "spanID": span_id,
            "operationName": "CreateMicroVM",
            "processID": pid,
            "startTime": int((NOW - start_ago) * 1e6),
            "tags": [{"key": k, "type": "string", "value": v} for k, v in tags.items()],
        }

    trace = {
        "traceID": TRACE,
        "spans": [
            span("a1", "p1", 3),
            span("a2", "p1", 2, error=True),
            span("a3", "p2", 1, **{"otel.status_code": "ERROR"}),  # another host's span
        ],
        "processes": {
            "p1": {"serviceName": "flintlockd", "tags": [{"key": "host.name", "value": "t-1"}]},
            "p2": {"serviceName": "flintlockd", "tags": [{"key": "host.name", "value": "t-9"}]},
        },
    }
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/traces":
            return httpx.Response(200, json={"data": [trace], "total": 0, "errors": None})
        if request.url.path == f"/api/traces/{TRACE}":
            return httpx.Response(200, json={"data": [trace]})
        return httpx.Response(404, json={"data": None, "errors": [{"code": 404}]})

    jaeger = JaegerTraces(
        "http://j.test", transport=httpx.MockTransport(handler), clock=lambda: NOW
    )
    got = jaeger.host_traces("t-1", 300)
    assert (got.spans, got.errors) == (2, 1)
    assert got.newest_age == pytest.approx(2, abs=0.01)
    params = seen[0].url.params
    assert (params["service"], json.loads(params["tags"])) == ("flintlockd", {"host.name": "t-1"})
    assert int(params["end"]) - int(params["start"]) == pytest.approx(300e6, abs=2)
    assert jaeger.has_trace(TRACE)
    assert not jaeger.has_trace("f" * 32)
