"""flintlockd's debug ``/metrics``: go-grpc-prometheus server counters, go_* and process_*.

Faithful to flintlock-facts.md: the four ``grpc_server_*`` counter families with
labels ``grpc_type, grpc_service, grpc_method`` (+ ``grpc_code`` on handled), for the
``microvm.services.api.v1alpha1.MicroVM`` service; no handling-time histogram
(Flintlock does not enable it). go-grpc-prometheus pre-registers every method with
every status code at 0 when the server is registered, so those zero series exist
from the first scrape, as they do on a real host.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

SERVICE = "microvm.services.api.v1alpha1.MicroVM"
# (method, grpc_type) as flintlock's proto declares them.
METHODS: tuple[tuple[str, str], ...] = (
    ("CreateMicroVM", "unary"),
    ("DeleteMicroVM", "unary"),
    ("GetMicroVM", "unary"),
    ("ListMicroVMs", "unary"),
    ("ListMicroVMsStream", "server_stream"),
)
# google.golang.org/grpc/codes, in the order go-grpc-prometheus pre-registers them.
GRPC_CODES: tuple[str, ...] = (
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
)
# Calls per second (mean) and the errors a method plausibly returns, with their share.
TRAFFIC: dict[str, tuple[float, tuple[tuple[str, float], ...]]] = {
    "CreateMicroVM": (
        0.4,
        (("AlreadyExists", 0.05), ("InvalidArgument", 0.03), ("Internal", 0.02)),
    ),
    "DeleteMicroVM": (0.3, (("NotFound", 0.06), ("Internal", 0.01))),
    "GetMicroVM": (3.0, (("NotFound", 0.08),)),
    "ListMicroVMs": (1.5, (("Unavailable", 0.01),)),
    "ListMicroVMsStream": (0.2, (("Canceled", 0.05),)),
}
GO_VERSION = "go1.22.5"


@dataclass
class _MethodCounters:
    started: int = 0
    received: int = 0
    sent: int = 0


class GrpcTraffic(Collector):
    """The go-grpc-prometheus server counters, advanced one simulated second per tick.

    Deterministic: the counters after tick n depend only on the seed and n.
    """

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(f"{seed}/grpc")
        self._lock = threading.Lock()
        self._methods = {m: _MethodCounters() for m, _ in METHODS}
        self._handled = {(m, c): 0 for m, _ in METHODS for c in GRPC_CODES}
        self.ticks = 0

    def tick(self) -> list[tuple[str, str]]:
        """Advance one second; returns the calls served, as (method, grpc code)."""
        served: list[tuple[str, str]] = []
        with self._lock:
            for method, grpc_type in METHODS:
                mean, errors = TRAFFIC[method]
                calls = self._poisson(mean)
                counters = self._methods[method]
                counters.started += calls
                counters.received += calls  # one request message per call
                for _ in range(calls):
                    code = "OK"
                    draw = self._rng.random()
                    for err, share in errors:
                        if draw < share:
                            code = err
                            break
                        draw -= share
                    self._handled[(method, code)] += 1
                    served.append((method, code))
                    if code == "OK":
                        # A stream sends one message per microVM; a unary call one reply.
                        counters.sent += self._rng.randint(1, 8) if grpc_type != "unary" else 1
            self.ticks += 1
        return served

    def _poisson(self, mean: float) -> int:
        # Knuth's method; the means are small.
        limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
        while True:
            p *= self._rng.random()
            if p <= limit:
                return k
            k += 1

    def started(self, method: str) -> int:
        with self._lock:
            return self._methods[method].started

    def handled(self, method: str, code: str) -> int:
        with self._lock:
            return self._handled[(method, code)]

    def collect(self) -> Iterator[Metric]:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        started = CounterMetricFamily(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            labels=labels,
        )
        handled = CounterMetricFamily(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            labels=[*labels, "grpc_code"],
        )
        received = CounterMetricFamily(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            labels=labels,
        )
        sent = CounterMetricFamily(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            labels=labels,
        )
        with self._lock:
            for method, grpc_type in METHODS:
                key = [grpc_type, SERVICE, method]
                c = self._methods[method]
                started.add_metric(key, c.started)
                received.add_metric(key, c.received)
                sent.add_metric(key, c.sent)
                for code in GRPC_CODES:
                    handled.add_metric([*key, code], self._handled[(method, code)])
        yield from (handled, received, sent, started)


class GoRuntime(Collector):
    """The client_golang Go collector's main series, with plausible flintlockd values."""

    def __init__(self, traffic: GrpcTraffic) -> None:
        self._traffic = traffic

    def collect(self) -> Iterator[Metric]:
        t = self._traffic.ticks
        gc = SummaryMetricFamily(
            "go_gc_duration_seconds",
            "A summary of the pause duration of garbage collection cycles.",
            count_value=t // 7,
            sum_value=round(t // 7 * 0.00012, 6),
        )
        yield gc
        yield GaugeMetricFamily(
            "go_goroutines", "Number of goroutines that currently exist.", value=42 + t % 5
        )
        info = GaugeMetricFamily(
            "go_info", "Information about the Go environment.", labels=["version"]
        )
        info.add_metric([GO_VERSION], 1)
        yield info
        yield GaugeMetricFamily(
            "go_memstats_alloc_bytes",
            "Number of bytes allocated and still in use.",
            value=18_000_000 + (t * 7919) % 4_000_000,
        )
        yield GaugeMetricFamily(
            "go_memstats_heap_inuse_bytes",
            "Number of heap bytes that are in use.",
            value=21_000_000 + (t * 6007) % 3_000_000,
        )
        yield GaugeMetricFamily("go_threads", "Number of OS threads created.", value=14)


class FlintlockdMetrics:
    """What ``flintlockd --debug-endpoint`` serves at ``/metrics``."""

    def __init__(self, seed: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.traffic = GrpcTraffic(seed)
        self.registry.register(self.traffic)
        self.registry.register(GoRuntime(self.traffic))
        # The real process_* collector, reading this process' /proc entry.
        ProcessCollector(registry=self.registry)

    def tick(self) -> list[tuple[str, str]]:
        return self.traffic.tick()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
