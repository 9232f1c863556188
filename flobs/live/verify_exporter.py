"""Continuous verification (`flobs verify --every 60s --listen 127.0.0.1:9465`).

Verification runs every interval; the latest result is served at ``/metrics`` in the
Prometheus text format, so the centre can scrape its own verifier and alert on it
(``FlobsVerificationFailing``). Memory stays bounded over days: only the newest
exposition (one page, sized by the inventory) and a few counters are kept, never a
history of reports.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from flobs.errors import RemoteError, SystemFailure, UsageError
from flobs.live.verify import VerifyReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("data", "partial", "no data", "error", "skipped")
STATES = ("present", "missing", "stale", "unreachable")


def _escape(value: str) -> str:
    """A label value in the text format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass(frozen=True)
class Gauge:
    name: str
    help: str
    kind: str = "gauge"


def _family(metric: Gauge, samples: Iterable[tuple[dict[str, str], float]]) -> Iterable[str]:
    yield f"# HELP {metric.name} {metric.help}\n"
    yield f"# TYPE {metric.name} {metric.kind}\n"
    for labels, value in samples:
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        yield (
            f"{metric.name}{{{text}}} {_number(value)}\n"
            if text
            else (f"{metric.name} {_number(value)}\n")
        )


@dataclass
class RunRecord:
    """What the exporter keeps between scrapes: the last outcome and counters."""

    runs: int = 0
    failed_runs: int = 0  # runs that could not verify (the centre unreachable …)
    last_started: float = 0.0  # wall clock, seconds
    last_duration: float = 0.0
    last_error: str = ""


def exposition(report: VerifyReport | None, record: RunRecord, hosts: list[str]) -> str:
    """The /metrics page for the newest run (``report`` is None when it failed)."""
    lines: list[str] = []
    add = lines.extend
    ok = report is not None and report.ok
    add(
        _family(
            Gauge("flobs_verify_ok", "1 when the last verification passed, else 0."),
            [({}, 1.0 if ok else 0.0)],
        )
    )
    add(
        _family(
            Gauge(
                "flobs_verify_error",
                "1 when the last run could not verify at all (e.g. the centre is unreachable).",
            ),
            [({}, 0.0 if report is not None else 1.0)],
        )
    )
    add(
        _family(
            Gauge("flobs_verify_runs_total", "Verification runs since start.", "counter"),
            [({}, float(record.runs))],
        )
    )
    add(
        _family(
            Gauge(
                "flobs_verify_errors_total",
                "Runs that could not verify (remote failures) since start.",
                "counter",
            ),
            [({}, float(record.failed_runs))],
        )
    )
    add(
        _family(
            Gauge("flobs_verify_last_run_timestamp_seconds", "When the last run started."),
            [({}, record.last_started)],
        )
    )
    add(
        _family(
            Gauge("flobs_verify_last_run_duration_seconds", "How long the last run took."),
            [({}, record.last_duration)],
        )
    )
    if report is None:
        return "".join(lines)
    states = {h.name: h.state for h in report.hosts}
    add(
        _family(
            Gauge("flobs_verify_host_up", "1 when the host's data is present and fresh."),
            [({"host": h}, 1.0 if states.get(h) == "present" else 0.0) for h in hosts],
        )
    )
    if report.signals:
        lost = {s.host: s.lost for s in report.signals}
        add(
            _family(
                Gauge(
                    "flobs_verify_signal_up",
                    "1 when the host's logs/traces/correlation check passed.",
                ),
                [
                    ({"host": s.host, "signal": name}, 0.0 if name in lost[s.host] else 1.0)
                    for s in report.signals
                    for name in ("logs", "traces", "correlation")
                    if getattr(s, name) is not None
                ],
            )
        )
    add(
        _family(
            Gauge("flobs_verify_hosts", "Inventory hosts by state at the centre."),
            [({"state": s}, float(sum(1 for v in states.values() if v == s))) for s in STATES],
        )
    )
    add(
        _family(
            Gauge(
                "flobs_verify_freshness_seconds",
                "Age of the host's newest sample per signal, from the samples' timestamps.",
            ),
            [
                ({"host": h.name, "signal": "metrics"}, h.age_seconds)
                for h in report.hosts
                if h.age_seconds is not None
            ]
            + [
                ({"host": s.host, "signal": name}, status.age_seconds)
                for s in report.signals
                for name, status in (("logs", s.logs), ("traces", s.traces))
                if status is not None and status.age_seconds is not None
            ],
        )
    )
    counts = report.panel_counts()
    by_outcome = {
        "data": counts.data,
        "partial": counts.partial,
        "no data": counts.no_data,
        "error": counts.errors,
        "skipped": counts.skipped,
    }
    add(
        _family(
            Gauge("flobs_verify_panels", "Dashboard panels by outcome."),
            [({"outcome": o}, float(by_outcome[o])) for o in OUTCOMES],
        )
    )
    add(
        _family(
            Gauge("flobs_verify_query_errors", "Panel and rule queries that failed."),
            [({}, float(len(report.query_errors)))],
        )
    )
    if report.alerts is not None:
        alerts = report.alerts.alerts
        add(
            _family(
                Gauge("flobs_verify_alerts", "Active alerts at the centre by state."),
                [
                    ({"state": s}, float(sum(1 for a in alerts if a.state == s)))
                    for s in ("firing", "pending")
                ],
            )
        )
    return "".join(lines)


# A scraper sends its request at once; a connection that sends nothing (a port scan, a
# half-open socket) would otherwise hold a thread and a descriptor for as long as
# `--every` runs, which is days.
IDLE_SECONDS = 10.0


class _Handler(BaseHTTPRequestHandler):
    page: ClassVar[Callable[[], str]]
    timeout = IDLE_SECONDS  # socket timeout per connection (StreamRequestHandler)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            body = b"flobs verify: metrics at /metrics\n"
            self.send_response(404 if self.path != "/" else 200)
        else:
            body = type(self).page().encode("utf-8")
            self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # a scrape every few seconds is not news


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``:PORT`` is loopback, never every interface)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {listen!r} is not HOST:PORT", hint="e.g. 127.0.0.1:9465")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


class VerifyExporter:
    """Runs ``run`` every ``interval`` seconds and serves the newest result."""

    def __init__(
        self,
        run: Callable[[], VerifyReport],
        hosts: list[str],
        interval: float,
        listen: tuple[str, int],
        on_run: Callable[[VerifyReport | None, RunRecord], None] | None = None,
    ) -> None:
        self.run = run
        self.hosts = hosts
        self.interval = interval
        self.record = RunRecord()
        self.on_run = on_run
        self.stopping = threading.Event()
        self._page = exposition(None, self.record, hosts)
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"page": staticmethod(self.page)})
        try:
            self.server = ThreadingHTTPServer(listen, handler)
        except OSError as err:
            # Like `flobs simulate`: a port that cannot be bound is a system failure (exit 3).
            hint = (
                "another process already listens there; pick a free port"
                if err.errno == errno.EADDRINUSE
                else None
            )
            raise SystemFailure(
                f"--listen {listen[0]}:{listen[1]}: {err.strerror}", hint=hint
            ) from err
        self.server.daemon_threads = True
        self.listen_host = listen[0]

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.server.server_port}"

    def page(self) -> str:
        with self._lock:
            return self._page

    def run_once(self) -> VerifyReport | None:
        started_wall, started = time.time(), time.monotonic()
        report: VerifyReport | None = None
        try:
            report = self.run()
            error = ""
        except RemoteError as err:
            error = str(err)
        record = self.record
        record.runs += 1
        record.failed_runs += report is None
        record.last_started = started_wall
        record.last_duration = time.monotonic() - started
        record.last_error = error
        page = exposition(report, record, self.hosts)
        with self._lock:
            self._page = page
        if self.on_run is not None:
            self.on_run(report, record)
        return report

    def serve(self) -> None:
        """Run until ``stop()`` (SIGTERM); the HTTP server answers meanwhile."""
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            while not self.stopping.is_set():
                began = time.monotonic()
                self.run_once()
                self.stopping.wait(max(0.0, self.interval - (time.monotonic() - began)))
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=5)

    def stop(self) -> None:
        self.stopping.set()
