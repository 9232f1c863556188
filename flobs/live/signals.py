"""Logs and traces per host, against whichever stores the fleet ships them to.

Each store sits behind a small interface, so verify does not care which it is:

* :class:`LogsBackend` — ``host_logs(host, window)``: lines in the window, by ``level``,
  the newest line's age, and trace ids the lines mention. Loki here
  (``GET /loki/api/v1/query_range``); VictoriaLogs through its LogsQL client.
* :class:`TracesBackend` — ``host_traces(host, window)``: spans and error spans in
  the window; ``has_trace(id)``: the store resolves that trace. Tempo here
  (``GET /api/search`` with TraceQL, ``GET /api/v2/traces/<id>``, v1 as fallback);
  Jaeger through its query API client.

Correlation: a trace id taken from the host's own log lines must resolve to a trace,
which is what Grafana's "logs to trace" link needs.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from flobs.errors import RemoteError
from flobs.live.store_api import DEFAULT_TIMEOUT, StoreAPI

LOG_LINES = 1000  # per host and run: enough to count levels, bounded for huge hosts
TRACES_PER_HOST = 100
_TRACE_ID = re.compile(
    r"""(?:trace_?id|traceID)["']?\s*[:=]\s*["']?([0-9a-fA-F]{32}|[0-9a-fA-F]{16})\b""",
)
_LEVEL = re.compile(r"""(?:^|[\s{,])"?level"?\s*[:=]\s*"?([A-Za-z]+)""")

SignalState = Literal["present", "missing", "stale"]


@dataclass(frozen=True)
class HostLogs:
    lines: int  # in the window (at most LOG_LINES are read)
    by_level: dict[str, int]
    newest_age: float | None
    trace_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostTraces:
    spans: int
    errors: int
    newest_age: float | None


class LogsBackend(Protocol):
    kind: str
    url: str

    def host_logs(self, host: str, window: float) -> HostLogs: ...

    def close(self) -> None: ...


class TracesBackend(Protocol):
    kind: str
    url: str

    def host_traces(self, host: str, window: float) -> HostTraces: ...

    def has_trace(self, trace_id: str) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SignalStatus:
    state: SignalState
    age_seconds: float | None
    detail: str


@dataclass
class HostSignals:
    host: str
    logs: SignalStatus | None = None
    log_levels: dict[str, int] = field(default_factory=dict)
    traces: SignalStatus | None = None
    spans: int = 0
    error_spans: int = 0
    correlation: SignalStatus | None = None

    @property
    def lost(self) -> list[str]:
        """Signals of this host that fail verification."""
        out = []
        for name in ("logs", "traces", "correlation"):
            status: SignalStatus | None = getattr(self, name)
            if status is not None and status.state != "present":
                out.append(name)
        return out


def _fail(where: str, what: str) -> RemoteError:
    return RemoteError(f"{where}: {what}")


def _label_value(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a LogQL/TraceQL string literal


def _trace_ids(text: str) -> list[str]:
    return [m.lower() for m in _TRACE_ID.findall(text)]


# --------------------------------------------------------------------------- Loki


class LokiLogs(StoreAPI):
    """Loki's query API: ``GET /loki/api/v1/query_range`` with a stream selector."""

    kind = "Loki"

    def __init__(
        self,
        url: str,
        *,
        host_label: str = "host",
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(url, transport=transport, timeout=timeout)
        self.host_label = host_label
        self._clock = clock

    def host_logs(self, host: str, window: float) -> HostLogs:
        now = self._clock()
        params = {
            "query": f"{{{self.host_label}={_label_value(host)}}}",
            "start": str(int((now - window) * 1e9)),
            "end": str(int(now * 1e9)),
            "limit": str(LOG_LINES),
            "direction": "backward",
        }
        _, body = self.get("/loki/api/v1/query_range", params)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("resultType") != "streams":
            raise _fail(self.where(), "query_range did not answer with streams")
        levels: dict[str, int] = {}
        newest: float | None = None
        ids: list[str] = []
        lines = 0
        for stream in data.get("result") or []:
            if not isinstance(stream, dict):
                continue
            raw_labels = stream.get("stream")
            labels: dict[str, Any] = raw_labels if isinstance(raw_labels, dict) else {}
            for value in stream.get("values") or []:
                if not (isinstance(value, list) and len(value) >= 2):
                    continue
                try:
                    ts = int(value[0]) / 1e9
                except (TypeError, ValueError):
                    continue
                line = str(value[1])
                lines += 1
                m = _LEVEL.search(line)
                level = (
                    str(
                        labels.get("level")
                        or labels.get("detected_level")
                        or (m and m.group(1))
                        or ""
                    ).lower()
                    or "unknown"
                )
                levels[level] = levels.get(level, 0) + 1
                newest = ts if newest is None else max(newest, ts)
                meta = value[2] if len(value) > 2 and isinstance(value[2], dict) else {}
                ids.extend(
                    _trace_ids(line)
                    + [
                        str(v).lower()
                        for k, v in meta.items()
                        if k.lower() in ("trace_id", "traceid")
                    ]
                )
        age = None if newest is None else max(0.0, now - newest)
        return HostLogs(lines, dict(sorted(levels.items())), age, tuple(dict.fromkeys(ids)))


# --------------------------------------------------------------------------- Tempo


class TempoTraces(StoreAPI):
    """Tempo's query API: TraceQL search, and traces by id (v2, then v1)."""

    kind = "Tempo"

    def __init__(
        self,
        url: str,
        *,
        host_attribute: str = "resource.host.name",
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(url, transport=transport, timeout=timeout)
        self.host_attribute = host_attribute
        self._clock = clock

    def _search(self, traceql: str, window: float) -> list[dict[str, Any]]:
        now = self._clock()
        params = {
            "q": traceql,
            "start": str(int(now - window)),
            "end": str(int(now) + 1),
            "limit": str(TRACES_PER_HOST),
            "spss": "1000",
        }
        _, body = self.get("/api/search", params)
        traces = body.get("traces") if isinstance(body, dict) else None
        if not isinstance(traces, list):
            raise _fail(self.where(), "search did not answer with traces")
        return [t for t in traces if isinstance(t, dict)]

    @staticmethod
    def _matched(traces: list[dict[str, Any]]) -> int:
        """Spans matched, over every span set (``spanSets``; older Tempo: ``spanSet``)."""
        total = 0
        for t in traces:
            sets = t.get("spanSets")
            if not isinstance(sets, list):
                sets = [t.get("spanSet")]
            for s in sets:
                if not isinstance(s, dict):
                    continue
                matched, spans = s.get("matched"), s.get("spans")
                if isinstance(matched, int) and not isinstance(matched, bool):
                    total += max(0, matched)
                elif isinstance(spans, list):
                    total += len(spans)
        return total

    def host_traces(self, host: str, window: float) -> HostTraces:
        selector = f"{self.host_attribute} = {_label_value(host)}"
        traces = self._search(f"{{ {selector} }}", window)
        errors = self._search(f"{{ {selector} && status = error }}", window)
        starts = []
        for t in traces:
            try:
                starts.append(int(t.get("startTimeUnixNano", "")) / 1e9)
            except (TypeError, ValueError):
                continue
        newest = max(starts) if starts else None
        age = None if newest is None else max(0.0, self._clock() - newest)
        return HostTraces(self._matched(traces), self._matched(errors), age)

    def has_trace(self, trace_id: str) -> bool:
        if not re.fullmatch(r"[0-9a-fA-F]{16,32}", trace_id):
            return False
        status, body = self.get(f"/api/v2/traces/{trace_id}", {}, not_found_ok=True)
        if status == 200 and isinstance(body, dict):
            trace = body.get("trace")
            return isinstance(trace, dict) and bool(trace.get("resourceSpans"))
        status, body = self.get(f"/api/traces/{trace_id}", {}, not_found_ok=True)
        return status == 200 and isinstance(body, dict) and bool(body.get("batches"))


# --------------------------------------------------------------------------- VictoriaLogs


def _rfc3339(text: Any) -> float | None:
    from datetime import datetime

    if not isinstance(text, str) or not text:
        return None
    try:
        # Nanosecond precision does not fit fromisoformat: keep microseconds.
        head, _, frac = text.rstrip("Z").partition(".")
        stamp = head + ("." + frac[:6] if frac else "") + "+00:00"
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


class VictoriaLogsLogs(StoreAPI):
    """VictoriaLogs' LogsQL API: ``GET /select/logsql/query`` (one JSON object per line)."""

    kind = "VictoriaLogs"

    def __init__(
        self,
        url: str,
        *,
        host_field: str = "host",
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(url, transport=transport, timeout=timeout)
        self.host_field = host_field
        self._clock = clock

    def host_logs(self, host: str, window: float) -> HostLogs:
        # host is a stream field of flobs' log pipelines: a stream filter is the fast path.
        scope = f"{{{self.host_field}={_label_value(host)}}} _time:{max(1, int(window))}s"
        rows = self.get_lines(
            "/select/logsql/query",
            {"query": f"{scope} | stats by (level) count() as n, max(_time) as newest"},
        )
        levels: dict[str, int] = {}
        newest: float | None = None
        for row in rows:
            if not isinstance(row, dict):
                continue
            try:
                n = int(row.get("n", 0))
            except (TypeError, ValueError):
                continue
            level = str(row.get("level") or "unknown").lower()
            levels[level] = levels.get(level, 0) + n
            ts = _rfc3339(row.get("newest"))
            if ts is not None:
                newest = ts if newest is None else max(newest, ts)
        ids: list[str] = []
        if levels:
            found = self.get_lines(
                "/select/logsql/query",
                {"query": f"{scope} trace_id:* | fields trace_id", "limit": "3"},
            )
            ids = [
                str(r["trace_id"]).lower()
                for r in found
                if isinstance(r, dict)
                and re.fullmatch(r"[0-9a-fA-F]{16,32}", str(r.get("trace_id")))
            ]
        age = None if newest is None else max(0.0, self._clock() - newest)
        return HostLogs(sum(levels.values()), dict(sorted(levels.items())), age, tuple(ids))


# --------------------------------------------------------------------------- Jaeger


class JaegerTraces(StoreAPI):
    """Jaeger's query API (the one its UI and Grafana use): ``GET /api/traces``."""

    kind = "Jaeger"

    def __init__(
        self,
        url: str,
        *,
        service: str = "flintlockd",
        host_tag: str = "host.name",
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(url, transport=transport, timeout=timeout)
        self.service = service
        self.host_tag = host_tag
        self._clock = clock

    def host_traces(self, host: str, window: float) -> HostTraces:
        now = self._clock()
        params = {
            "service": self.service,
            "tags": json.dumps({self.host_tag: host}),
            "start": str(int((now - window) * 1e6)),
            "end": str(int(now * 1e6) + 1),
            "limit": str(TRACES_PER_HOST),
        }
        _, body = self.get("/api/traces", params)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise _fail(self.where(), "/api/traces did not answer with a data list")
        spans = errors = 0
        newest: float | None = None
        for trace in data:
            if not isinstance(trace, dict):
                continue
            raw_processes = trace.get("processes")
            processes: dict[str, Any] = raw_processes if isinstance(raw_processes, dict) else {}
            for span in trace.get("spans") or []:
                if not isinstance(span, dict):
                    continue
                process = processes.get(str(span.get("processID"))) or {}
                ptags = _jaeger_tags(process.get("tags") if isinstance(process, dict) else None)
                if ptags.get(self.host_tag) != host:
                    continue
                spans += 1
                tags = _jaeger_tags(span.get("tags"))
                if tags.get("error") in (True, "true") or tags.get("otel.status_code") == "ERROR":
                    errors += 1
                start = span.get("startTime")
                if isinstance(start, int | float):
                    newest = start / 1e6 if newest is None else max(newest, start / 1e6)
        age = None if newest is None else max(0.0, now - newest)
        return HostTraces(spans, errors, age)

    def has_trace(self, trace_id: str) -> bool:
        if not re.fullmatch(r"[0-9a-fA-F]{16,32}", trace_id):
            return False
        status, body = self.get(f"/api/traces/{trace_id}", {}, not_found_ok=True)
        data = body.get("data") if isinstance(body, dict) else None
        return status == 200 and isinstance(data, list) and bool(data)


def _jaeger_tags(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in items if isinstance(items, list) else []:
        if isinstance(tag, dict) and isinstance(tag.get("key"), str):
            out[tag["key"]] = tag.get("value")
    return out


# --------------------------------------------------------------------------- checking


def check_host_signals(
    hosts: list[str],
    logs: LogsBackend | None,
    traces: TracesBackend | None,
    *,
    window: float,
) -> list[HostSignals]:
    """Per host: logs and spans arrived within ``window``, and a logged trace resolves."""
    out = []
    for host in hosts:
        seen = HostSignals(host)
        found_logs: HostLogs | None = None
        if logs is not None:
            found_logs = logs.host_logs(host, window)
            seen.log_levels = found_logs.by_level
            if found_logs.lines == 0:
                seen.logs = SignalStatus(
                    "missing", None, f"no log lines in {logs.kind} in the last {window:g}s"
                )
            else:
                levels = ", ".join(f"{k} {v}" for k, v in found_logs.by_level.items())
                seen.logs = SignalStatus(
                    "present", found_logs.newest_age, f"{found_logs.lines} lines ({levels})"
                )
        if traces is not None:
            found = traces.host_traces(host, window)
            seen.spans, seen.error_spans = found.spans, found.errors
            if found.spans == 0:
                seen.traces = SignalStatus(
                    "missing", None, f"no spans in {traces.kind} in the last {window:g}s"
                )
            else:
                seen.traces = SignalStatus(
                    "present", found.newest_age, f"{found.spans} spans, {found.errors} errors"
                )
        if logs is not None and traces is not None and found_logs is not None:
            seen.correlation = _correlate(found_logs, traces)
        out.append(seen)
    return out


def _correlate(found: HostLogs, traces: TracesBackend) -> SignalStatus | None:
    if not found.trace_ids:
        return None  # nothing to follow: not a failure (not every line is in a trace)
    tried = found.trace_ids[:3]
    for trace_id in tried:
        if traces.has_trace(trace_id):
            return SignalStatus("present", None, f"trace {trace_id} from the logs resolves")
    return SignalStatus(
        "missing",
        None,
        f"trace ids from the logs do not resolve in {traces.kind}: {', '.join(tried)}",
    )
