"""One simulated Flintlock host: its HTTP endpoints and a one-second ticker.

Serves, on the endpoints the inventory gives the host:
* ``flintlockd.metrics_endpoint`` → ``/metrics`` (flintlockd's debug server);
* ``flintlock_metrics.endpoint`` → ``<path>``, ``<path>/{ns}``, ``<path>/{ns}/{name}``,
  ``<path>/uid/{uid}`` (flintlock-metrics);
and appends logrus JSON lines to ``logs.path``. Everything but wall-clock time is
determined by the seed.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from flobs.errors import SystemFailure
from flobs.model import Endpoint, Fleet, Host
from flobs.promtime import seconds
from flobs.sim.flintlockd import FlintlockdMetrics
from flobs.sim.logs import LogrusWriter
from flobs.sim.machines import MachineMetrics, fleet_of_microvms
from flobs.sim.traces import Call, SpanSender, Tracer

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
Clock = Callable[[], float]
ContentType = Callable[[bytes], str | None]


def promhttp_content_type(_body: bytes) -> str | None:
    """flintlockd's debug server is client_golang's promhttp: the text format, labelled."""
    return TEXT_FORMAT


def go_sniffed_content_type(body: bytes) -> str | None:
    """What Go's net/http sends for a handler that sets no Content-Type.

    flintlock-metrics writes its lines without setting one (flintlock-facts.md), so
    net/http runs DetectContentType over the first write: text gives
    ``text/plain; charset=utf-8`` (no ``version``), an empty body gets no header at all,
    and a control byte in the first 512 bytes gives ``application/octet-stream``, which
    Prometheus 3 refuses without ``fallback_scrape_protocol``.
    """
    if not body:
        return None
    head = body[:512]
    binary = any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B) for b in head)
    return "application/octet-stream" if binary else "text/plain; charset=utf-8"


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(
    endpoint: Endpoint, respond: Callable[[str], tuple[int, bytes]], content_type: ContentType
) -> _Quiet:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = respond(self.path.split("?", 1)[0])
            self.send_response(status)
            kind = content_type(body)
            if kind is not None:
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # the simulator is quiet; Prometheus' /targets shows scrape health

    host = endpoint.host or "0.0.0.0"  # noqa: S104 - only when the inventory says so
    try:
        return _Quiet((host, endpoint.port), Handler)
    except OSError as err:
        hint = (
            "another process already listens there; pick a free port in the inventory"
            if err.errno == errno.EADDRINUSE
            else None
        )
        raise SystemFailure(f"cannot listen on {endpoint}: {err.strerror}", hint=hint) from err


@dataclass(frozen=True)
class SimulatorEndpoints:
    flintlockd: str | None
    flintlock_metrics: str | None
    log_file: str | None


class SimulatedHost:
    """Start with ``start()``, stop with ``stop()`` (or use it as a context manager)."""

    def __init__(
        self,
        fleet: Fleet,
        host: Host,
        *,
        seed: int = 1,
        log_file: Path | None = None,
        write_logs: bool = True,
        send_spans: bool = True,
        clock: Clock = time.time,
    ) -> None:
        self.host = host
        self.seed = f"{seed}/{fleet.cluster}/{host.name}"
        self.clock = clock
        v = host.vars
        self.flintlockd = FlintlockdMetrics(self.seed)
        self.vms = fleet_of_microvms(self.seed, v.providers)
        flush = seconds(v.flintlock_metrics.flush_interval)
        self.machines = MachineMetrics(self.seed, self.vms, flush)
        self.log_path = log_file or Path(v.logs.path)
        self.logs = LogrusWriter(self.seed, self.log_path, self.vms) if write_logs else None
        self.tracer = Tracer(self.seed, self.vms)
        # Spans go to the host's collector over OTLP/HTTP, as flintlockd would send them.
        self.spans: SpanSender | None = None
        if send_spans and v.otelcol.enabled:
            self.spans = SpanSender(f"http://{v.otelcol.http_endpoint}/v1/traces")
        self._servers: list[_Quiet] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.started_at = 0.0

    # -- what is served --------------------------------------------------------
    def elapsed(self) -> float:
        return max(0.0, self.clock() - self.started_at)

    def _flintlockd(self, path: str) -> tuple[int, bytes]:
        if path != "/metrics":
            return 404, b"404 page not found\n"
        return 200, self.flintlockd.exposition()

    def _machines(self, path: str) -> tuple[int, bytes]:
        vms = self.machines.select(path, self.host.vars.flintlock_metrics.path)
        if vms is None:
            return 404, b"404 page not found\n"
        return 200, self.machines.render(self.elapsed(), vms).encode("utf-8")

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> SimulatorEndpoints:
        v = self.host.vars
        self.started_at = self.clock()
        fl_url = fm_url = None
        try:
            if v.flintlockd.metrics_endpoint is not None:
                self._servers.append(
                    _serve(v.flintlockd.metrics_endpoint, self._flintlockd, promhttp_content_type)
                )
                fl_url = f"http://{v.flintlockd.metrics_endpoint}/metrics"
            if v.flintlock_metrics.enabled:
                self._servers.append(
                    _serve(v.flintlock_metrics.endpoint, self._machines, go_sniffed_content_type)
                )
                fm_url = f"http://{v.flintlock_metrics.endpoint}{v.flintlock_metrics.path}"
        except SystemFailure:
            self.stop()
            raise
        if self.logs is not None:
            try:
                self.logs.write_tick(self.clock())
            except OSError as err:
                self.stop()
                raise SystemFailure(
                    f"cannot append to the log file {self.log_path}: {err.strerror}",
                    hint="pass --log-file PATH (or set vars.logs.path) to a writable file, "
                    "or --no-logs",
                ) from err
        for server in self._servers:
            t = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"sim-{self.host.name}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        ticker = threading.Thread(
            target=self._run_ticks, name=f"sim-tick-{self.host.name}", daemon=True
        )
        ticker.start()
        self._threads.append(ticker)
        return SimulatorEndpoints(
            fl_url, fm_url, str(self.log_path) if self.logs is not None else None
        )

    def _run_ticks(self) -> None:
        # One tick per simulated second, caught up after a stall so counters stay a
        # function of (seed, elapsed seconds).
        while not self._stop.wait(0.25):
            due = int(self.elapsed())
            while self.flintlockd.traffic.ticks < due:
                now = self.clock()
                calls: list[Call] = self.tracer.calls(self.flintlockd.tick(), now)
                if self.spans is not None:
                    self.spans.send(calls)
                if self.logs is not None:
                    try:
                        self.logs.write_tick(now, calls)
                    except OSError:
                        self.logs = None  # the disk went away; keep serving metrics

    def stop(self) -> None:
        self._stop.set()
        serving = bool(self._threads)  # shutdown() blocks unless serve_forever() runs
        for server in self._servers:
            if serving:
                server.shutdown()
            server.server_close()
        for t in self._threads:
            t.join(timeout=2)
        self._servers.clear()
        self._threads.clear()
        if self.spans is not None:
            self.spans.close()

    def __enter__(self) -> SimulatedHost:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
