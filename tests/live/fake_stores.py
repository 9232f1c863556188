"""Protocol-faithful fakes of Loki's and Tempo's query APIs, on real sockets.

Built from their HTTP API docs (Loki: ``POST /loki/api/v1/push``,
``GET /loki/api/v1/query_range``; Tempo: ``GET /api/search`` with TraceQL,
``GET /api/traces/<id>``, ``GET /api/v2/traces/<id>``), for the subset flobs uses:
stream selectors with ``=``, ``!=``, ``=~``, ``!~``; TraceQL ``{ resource.host.name = "h" }``
optionally ``&& status = error``. Anything else gets the 400 plain-text parse error the
real servers send. AGPL servers are not run here; these stand in for them.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


def parse_selector(text: str) -> list[tuple[str, str, str]] | None:
    """``{a="b", c=~"d"}`` → matchers; None if it is not a plain stream selector."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    body, out, pos = text[1:-1], [], 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if m is None:
            return None
        out.append((m.group(1), m.group(2), json.loads(f'"{m.group(3)}"')))
        pos = m.end()
        if pos < len(body):
            if body[pos] != ",":
                return None
            pos += 1
    return out or None


def _matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        got = labels.get(name, "")
        ok = {
            "=": got == value,
            "!=": got != value,
            "=~": re.fullmatch(value, got) is not None,
            "!~": re.fullmatch(value, got) is None,
        }[op]
        if not ok:
            return False
    return True


class _Server:
    def __init__(self, route: Callable[[str, str, dict[str, str], bytes], tuple[int, str, bytes]]):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, kind, data = route(method, url.path, params, body)
                outer.requests.append((method, url.path, params))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: object) -> None:
                return

        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json(status: int, doc: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(doc).encode()


def _text(status: int, text: str) -> tuple[int, str, bytes]:
    return status, "text/plain; charset=utf-8", text.encode()


@dataclass
class FakeLoki:
    """Loki: push streams, query them back by selector and time range."""

    entries: list[tuple[dict[str, str], int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = _Server(self._route)
        self.url = self._server.url
        self.requests = self._server.requests

    def close(self) -> None:
        self._server.close()

    def push(self, labels: dict[str, str], ts_ns: int, line: str) -> None:
        with self.lock:
            self.entries.append((dict(labels), ts_ns, line))

    def _route(
        self, method: str, path: str, params: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        if path == "/ready":
            return _text(200, "ready\n")
        if method == "POST" and path == "/loki/api/v1/push":
            for stream in json.loads(body)["streams"]:
                for ts, line in stream["values"]:
                    self.push(stream["stream"], int(ts), line)
            return 204, "text/plain", b""
        if method == "GET" and path == "/loki/api/v1/query_range":
            return self._query_range(params)
        return _text(404, "404 page not found\n")

    def _query_range(self, params: dict[str, str]) -> tuple[int, str, bytes]:
        matchers = parse_selector(params.get("query", ""))
        if matchers is None:
            return _text(400, "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER")
        try:
            start, end = int(params["start"]), int(params["end"])
            limit = int(params.get("limit", "100"))
        except (KeyError, ValueError):
            return _text(400, "invalid start or end parameter")
        backward = params.get("direction", "backward") == "backward"
        with self.lock:
            hits = [e for e in self.entries if _matches(e[0], matchers) and start <= e[1] < end]
        hits.sort(key=lambda e: e[1], reverse=backward)
        hits = hits[:limit]  # the limit is over entries, across streams
        streams: dict[str, dict[str, Any]] = {}
        for labels, ts, line in hits:
            key = json.dumps(labels, sort_keys=True)
            streams.setdefault(key, {"stream": labels, "values": []})["values"].append(
                [str(ts), line]
            )
        return _json(
            200,
            {
                "status": "success",
                "data": {"resultType": "streams", "result": list(streams.values()), "stats": {}},
            },
        )


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    name: str
    start_ns: int
    duration_ns: int
    host: str
    service: str = "flintlockd"
    error: bool = False


_TRACEQL = re.compile(
    r'^\{\s*resource\.host\.name\s*=\s*"((?:[^"\\]|\\.)*)"\s*(&&\s*status\s*=\s*error\s*)?\}$'
)


@dataclass
class FakeTempo:
    """Tempo: TraceQL search by host (and error status), traces by id (v1 and v2)."""

    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = _Server(self._route)
        self.url = self._server.url
        self.requests = self._server.requests

    def close(self) -> None:
        self._server.close()

    def add(self, span: Span) -> None:
        with self.lock:
            self.spans.append(span)

    def _route(
        self, method: str, path: str, params: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        if path == "/ready":
            return _text(200, "ready\n")
        if path == "/api/echo":
            return _text(200, "echo")
        if method == "GET" and path == "/api/search":
            return self._search(params)
        m = re.fullmatch(r"/api/(v2/)?traces/([0-9a-fA-F]+)", path)
        if method == "GET" and m:
            return self._trace(m.group(2).lower(), v2=bool(m.group(1)))
        return _text(404, "404 page not found\n")

    def _search(self, params: dict[str, str]) -> tuple[int, str, bytes]:
        m = _TRACEQL.match(params.get("q", "").strip())
        if m is None:
            return _text(400, "invalid TraceQL query: parse error at line 1, col 1")
        host, only_errors = json.loads(f'"{m.group(1)}"'), bool(m.group(2))
        start = int(params.get("start", "0")) * 10**9
        end = int(params.get("end", str(2**62 // 10**9))) * 10**9
        limit = int(params.get("limit", "20"))
        spss = int(params.get("spss", "3"))
        with self.lock:
            spans = list(self.spans)
        by_trace: dict[str, list[Span]] = {}
        for s in spans:
            by_trace.setdefault(s.trace_id, []).append(s)
        traces = []
        for trace_id, members in by_trace.items():
            root = min(members, key=lambda s: s.start_ns)
            if not start <= root.start_ns < end:
                continue
            matched = [s for s in members if s.host == host and (s.error or not only_errors)]
            if not matched:
                continue
            spanset = {
                "spans": [
                    {
                        "spanID": s.span_id,
                        "startTimeUnixNano": str(s.start_ns),
                        "durationNanos": str(s.duration_ns),
                    }
                    for s in matched[:spss]
                ],
                "matched": len(matched),
            }
            traces.append(
                {
                    "traceID": trace_id,
                    "rootServiceName": root.service,
                    "rootTraceName": root.name,
                    "startTimeUnixNano": str(root.start_ns),
                    "durationMs": max(1, root.duration_ns // 10**6),
                    "spanSet": spanset,
                    "spanSets": [spanset],
                }
            )
        traces.sort(key=lambda t: int(t["startTimeUnixNano"]), reverse=True)
        return _json(200, {"traces": traces[:limit], "metrics": {"inspectedTraces": len(by_trace)}})

    def _trace(self, trace_id: str, *, v2: bool) -> tuple[int, str, bytes]:
        with self.lock:
            members = [s for s in self.spans if s.trace_id == trace_id.rjust(32, "0")]
        if not members:
            return _text(404, "trace not found")
        resource_spans = [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": s.service}},
                        {"key": "host.name", "value": {"stringValue": s.host}},
                    ]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": s.trace_id,
                                "spanId": s.span_id,
                                "name": s.name,
                                "startTimeUnixNano": str(s.start_ns),
                                "endTimeUnixNano": str(s.start_ns + s.duration_ns),
                                "status": {"code": "STATUS_CODE_ERROR"} if s.error else {},
                            }
                        ]
                    }
                ],
            }
            for s in members
        ]
        if v2:
            return _json(200, {"trace": {"resourceSpans": resource_spans}})
        return _json(200, {"batches": resource_spans})
