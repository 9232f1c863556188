"""The simulator as an instrumented flintlockd: spans per gRPC call, logs that name them."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flobs.sim.flintlockd import GRPC_CODES, METHODS, SERVICE, GrpcTraffic
from flobs.sim.logs import LogrusWriter
from flobs.sim.machines import fleet_of_microvms
from flobs.sim.traces import PLAN_STEPS, SpanSender, Tracer, otlp_request

NOW = 1_795_000_000.0


def simulate(seconds: int, seed: str = "s") -> tuple[GrpcTraffic, list[Any]]:
    traffic = GrpcTraffic(seed)
    tracer = Tracer(seed, fleet_of_microvms(seed, ("firecracker",)))
    calls = []
    for i in range(seconds):
        calls += tracer.calls(traffic.tick(), NOW + i)
    return traffic, calls


def test_one_server_span_per_call_agrees_with_the_grpc_counters() -> None:
    traffic, calls = simulate(300)
    per_method_code = Counter((c.method, c.code) for c in calls)
    for method, _ in METHODS:
        assert traffic.started(method) == sum(
            n for (m, _), n in per_method_code.items() if m == method
        )
        for code in GRPC_CODES:
            assert traffic.handled(method, code) == per_method_code[(method, code)]
    span = calls[0].span
    assert span.name == f"{SERVICE}/{calls[0].method}"
    assert span.kind == 2  # SERVER
    attrs = dict(span.attributes)
    assert attrs["rpc.system"] == "grpc"
    assert attrs["rpc.service"] == SERVICE
    assert len(span.trace_id) == 32 and len(span.span_id) == 16
    assert len({c.span.trace_id for c in calls}) == len(calls)


def test_failed_calls_are_errors_and_plans_have_child_spans() -> None:
    _, calls = simulate(600)
    ok_create = next(c for c in calls if c.method == "CreateMicroVM" and c.code == "OK")
    steps = [dict(s.attributes)["flintlock.plan.step"] for s in ok_create.steps]
    assert steps == list(PLAN_STEPS["CreateMicroVM"])
    for step in ok_create.steps:
        assert step.parent_id == ok_create.span.span_id
        assert step.trace_id == ok_create.span.trace_id
        assert ok_create.span.start_ns <= step.start_ns <= step.end_ns <= ok_create.span.end_ns
        assert step.error is None
    assert ok_create.span.error is None
    internal = next(c for c in calls if c.method == "CreateMicroVM" and c.code == "Internal")
    assert internal.span.error == "executing plan: step volume_mount: device busy"
    assert [s.error is not None for s in internal.steps] == [False, True]  # stops at the failure
    assert dict(internal.span.attributes)["rpc.grpc.status_code"] == 13
    refused = next(c for c in calls if c.code == "AlreadyExists")
    assert refused.steps == () and refused.span.error == "microvm already exists"

    # Creates are slow, reads fast: the latency panels have something to show.
    def median(method: str) -> float:
        d = sorted(c.span.end_ns - c.span.start_ns for c in calls if c.method == method)
        return d[len(d) // 2] / 1e9

    assert 0.6 < median("CreateMicroVM") < 2.5
    assert median("GetMicroVM") < 0.02


def test_the_same_seed_gives_the_same_spans() -> None:
    assert simulate(30, "a")[1] == simulate(30, "a")[1]
    assert simulate(30, "a")[1] != simulate(30, "b")[1]


def test_log_lines_carry_the_trace_and_span_they_were_logged_under(tmp_path: Any) -> None:
    _, calls = simulate(300)
    writer = LogrusWriter("s", tmp_path / "f.log", fleet_of_microvms("s", ("firecracker",)))
    lines = writer.call_lines(calls)
    spans = {(s.trace_id, s.span_id): s for c in calls for s in (c.span, *c.steps)}
    assert lines
    for line in lines:
        assert (line["trace_id"], line["span_id"]) in spans
    failed = [line for line in lines if line["level"] == "error"]
    assert failed and all(spans[(f["trace_id"], f["span_id"])].error == f["error"] for f in failed)
    # Written lines are logrus JSON with sorted keys, like every other line.
    writer.write_tick(NOW, calls[:20])
    for text in (tmp_path / "f.log").read_text().splitlines():
        assert list(json.loads(text)) == sorted(json.loads(text))


def test_otlp_json_request_and_sender() -> None:
    _, calls = simulate(20)
    body = otlp_request(calls)
    (rs,) = body["resourceSpans"]
    assert rs["resource"]["attributes"] == [
        {"key": "service.name", "value": {"stringValue": "flintlockd"}}
    ]
    spans = rs["scopeSpans"][0]["spans"]
    assert len(spans) == sum(1 + len(c.steps) for c in calls)
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            assert self.path == "/v1/traces"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sender = SpanSender(f"http://127.0.0.1:{server.server_address[1]}/v1/traces")
        assert sender.send(calls)
        assert got == [body] and sender.sent == len(spans)
    finally:
        server.shutdown()
        server.server_close()
    down = SpanSender(f"http://127.0.0.1:{server.server_address[1]}/v1/traces")
    assert not down.send(calls) and down.failed == len(spans)
