"""flintlockd as the proposal plans it instrumented: one OTLP span per gRPC call.

Flintlock emits no traces today (flintlock-facts.md); the plan is that flintlockd
sends OTLP to the collector on its host (``localhost:4318`` for OTLP/HTTP). The
simulator does what that instrumentation would: a SERVER span per call of the
``microvm.services.api.v1alpha1.MicroVM`` service (OpenTelemetry's gRPC semantic
conventions: ``rpc.system``, ``rpc.service``, ``rpc.method``,
``rpc.grpc.status_code``; status ERROR on a failed call), with one child span per
plan step of a create or delete. The same calls advance the go-grpc-prometheus
counters (``flintlockd.GrpcTraffic``), so traces and metrics tell one story, and
the log lines of a call carry its ``trace_id``/``span_id`` (``logs.LogrusWriter``).

Spans go out as OTLP/HTTP JSON (the collector's receiver takes it), so the simulator
needs no OpenTelemetry SDK. Everything but wall-clock time is a function of the seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from flobs.sim.flintlockd import SERVICE
from flobs.sim.machines import MicroVM

SERVICE_NAME = "flintlockd"
SCOPE = "github.com/liquidmetal-dev/flintlock/pkg/grpc"  # where the interceptor would live
# grpc codes as numbers (google.golang.org/grpc/codes), for rpc.grpc.status_code.
GRPC_CODE_NUMBERS = {
    "OK": 0,
    "Canceled": 1,
    "Unknown": 2,
    "InvalidArgument": 3,
    "DeadlineExceeded": 4,
    "NotFound": 5,
    "AlreadyExists": 6,
    "PermissionDenied": 7,
    "ResourceExhausted": 8,
    "FailedPrecondition": 9,
    "Aborted": 10,
    "OutOfRange": 11,
    "Unimplemented": 12,
    "Internal": 13,
    "Unavailable": 14,
    "DataLoss": 15,
    "Unauthenticated": 16,
}
# Median and spread (lognormal sigma) of a call's duration in seconds: creating a
# microVM runs a plan (dirs, volumes, taps, the VMM), reads are cheap.
LATENCY: dict[str, tuple[float, float]] = {
    "CreateMicroVM": (1.2, 0.45),
    "DeleteMicroVM": (0.4, 0.4),
    "GetMicroVM": (0.006, 0.5),
    "ListMicroVMs": (0.015, 0.5),
    "ListMicroVMsStream": (0.3, 0.6),
}
# Plan steps run under a create or delete call (flintlockd's plans component).
PLAN_STEPS: dict[str, tuple[str, ...]] = {
    "CreateMicroVM": (
        "runtime_dir_create",
        "volume_mount",
        "network_interface_create",
        "microvm_create",
        "microvm_start",
    ),
    "DeleteMicroVM": ("microvm_delete", "network_interface_delete", "runtime_dir_delete"),
}
# The step a failed call fails in, and what flintlockd would say.
FAILING_STEP = {"CreateMicroVM": "volume_mount", "DeleteMicroVM": "microvm_delete"}
ERROR_TEXT = {
    "AlreadyExists": "microvm already exists",
    "InvalidArgument": "invalid microvm spec: vcpu must be at least 1",
    "Internal": "executing plan: step {step}: device busy",
    "NotFound": "microvm not found",
    "Unavailable": "containerd is not available",
    "Canceled": "context canceled",
}


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: tuple[tuple[str, str | int], ...]
    error: str | None = None  # status message when the span failed
    kind: int = 2  # SERVER for the call, INTERNAL (1) for plan steps


@dataclass(frozen=True)
class Call:
    """One gRPC call as flintlockd served it: its span, child spans and microVM."""

    method: str
    code: str
    span: Span
    steps: tuple[Span, ...] = ()
    vm: MicroVM | None = None

    @property
    def vmid(self) -> str | None:
        return f"{self.vm.namespace}/{self.vm.name}/{self.vm.uid}" if self.vm else None

    @property
    def failed_step(self) -> Span | None:
        return next((s for s in self.steps if s.error), None)


@dataclass
class Tracer:
    """Turns the calls of one simulated second into spans (deterministic per seed)."""

    seed: str
    vms: list[MicroVM]
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}/traces")

    def _hex(self, bits: int) -> str:
        return f"{self._rng.getrandbits(bits):0{bits // 4}x}"

    def duration(self, method: str) -> float:
        median, sigma = LATENCY[method]
        return median * math.exp(self._rng.gauss(0, sigma))

    def calls(self, outcomes: list[tuple[str, str]], now: float) -> list[Call]:
        """Spans for the calls (method, grpc code) that ended during the second up to now."""
        out: list[Call] = []
        end_base = int(now * 1e9)
        for method, code in outcomes:
            trace_id, span_id = self._hex(128), self._hex(64)
            end = end_base - int(self._rng.random() * 1e9)
            start = end - int(self.duration(method) * 1e9)
            vm = self._rng.choice(self.vms) if self.vms and method != "ListMicroVMs" else None
            attrs: list[tuple[str, str | int]] = [
                ("rpc.system", "grpc"),
                ("rpc.service", SERVICE),
                ("rpc.method", method),
                ("rpc.grpc.status_code", GRPC_CODE_NUMBERS[code]),
            ]
            if vm is not None:
                attrs.append(("flintlock.vmid", f"{vm.namespace}/{vm.name}/{vm.uid}"))
            steps = self._steps(method, code, trace_id, span_id, start, end)
            error = None
            if code != "OK":
                failing = next((s for s in steps if s.error), None)
                error = failing.error if failing else ERROR_TEXT.get(code, code)
            span = Span(
                trace_id, span_id, None, f"{SERVICE}/{method}", start, end, tuple(attrs), error
            )
            out.append(Call(method, code, span, steps, vm))
        return out

    def _steps(
        self, method: str, code: str, trace_id: str, parent: str, start: int, end: int
    ) -> tuple[Span, ...]:
        names = PLAN_STEPS.get(method, ())
        if not names or code in ("AlreadyExists", "InvalidArgument", "NotFound"):
            return ()  # refused before any plan ran
        fails_at = FAILING_STEP.get(method) if code != "OK" else None
        spans: list[Span] = []
        cursor, share = start, (end - start) // len(names)
        for name in names:
            failed = name == fails_at
            error = ERROR_TEXT.get(code, code).format(step=name) if failed else None
            spans.append(
                Span(
                    trace_id,
                    self._hex(64),
                    parent,
                    f"plan step {name}",
                    cursor,
                    cursor + share,
                    (("flintlock.plan.step", name),),
                    error,
                    kind=1,
                )
            )
            cursor += share
            if failed:
                break
        return tuple(spans)


def _value(v: str | int) -> dict[str, Any]:
    return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}


def _span_json(span: Span) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": [{"key": k, "value": _value(v)} for k, v in span.attributes],
        "status": {"code": 2, "message": span.error} if span.error else {"code": 0},
    }
    if span.parent_id:
        doc["parentSpanId"] = span.parent_id
    return doc


def otlp_request(calls: list[Call]) -> dict[str, Any]:
    """An OTLP/HTTP JSON ExportTraceServiceRequest for the calls' spans."""
    spans = [_span_json(s) for c in calls for s in (c.span, *c.steps)]
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": _value(SERVICE_NAME)}]
                },
                "scopeSpans": [{"scope": {"name": SCOPE}, "spans": spans}],
            }
        ]
    }


class SpanSender:
    """POSTs spans to the host's collector; a collector that is down costs nothing
    but a count (flintlockd would drop them too)."""

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.url = url
        self._client = client or httpx.Client(timeout=2.0)
        self.sent = 0
        self.failed = 0

    def send(self, calls: list[Call]) -> bool:
        if not calls:
            return True
        n = sum(1 + len(c.steps) for c in calls)
        try:
            r = self._client.post(self.url, json=otlp_request(calls))
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            self.sent += n
        else:
            self.failed += n
        return ok

    def close(self) -> None:
        self._client.close()
