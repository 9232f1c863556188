"""A real HTTP server on 127.0.0.1 that misbehaves on purpose.

Each route is a function that writes raw bytes to the socket: it can drip, send
gigabytes, garbage, HTML or JSON of the wrong shape. The server records how many
bytes every answer got out before the client hung up, and every request's headers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    server: HostileServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._serve()

    def _serve(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        self.server.first_at = self.server.first_at or time.monotonic()
        route = self.server.routes.get(urlsplit(self.path).path, self.server.default)
        with suppress(TimeoutError, BrokenPipeError, ConnectionResetError):
            route(self)
        self.close_connection = True

    # -------------------------------------------------------------- building blocks
    def raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.server.sent += len(data)

    def head(self, status: int = 200, content_type: str = "application/json", **extra: str) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", "Connection: close"]
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
        self.raw(("\r\n".join(lines) + "\r\n\r\n").encode())

    def answer(self, status: int, body: bytes | str | Any, content_type: str | None = None) -> None:
        if isinstance(body, str):
            data, kind = body.encode(), content_type or "text/plain"
        elif isinstance(body, bytes):
            data, kind = body, content_type or "application/octet-stream"
        else:
            data, kind = json.dumps(body).encode(), content_type or "application/json"
        self.head(status, kind, Content_Length=str(len(data)))
        self.raw(data)


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, Route] = {}
        self.default: Route = lambda h: h.answer(404, "not found")
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.sent = 0
        self.first_at = 0.0  # time.monotonic() of the first request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ------------------------------------------------------------------ misbehaviours


def drip_body(
    prefix: bytes = b'{"status":"success","data":{"resultType":"vector","result":[',
) -> Route:
    """Headers at once, then the body one byte every 0.1 s, forever."""

    def route(h: Handler) -> None:
        h.head()
        h.raw(prefix)
        while True:
            time.sleep(0.1)
            h.raw(b" ")

    return route


def drip_headers(h: Handler) -> None:
    """The status line, then header bytes one every 0.1 s, forever."""
    h.raw(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while True:
        time.sleep(0.1)
        h.raw(b"a")


def endless_vector(h: Handler) -> None:
    """A valid vector answer that never ends (no Content-Length)."""
    h.head()
    h.raw(b'{"status":"success","data":{"resultType":"vector","result":[')
    series = b'{"metric":{"host":"h","job":"node","instance":"10.0.0.1:9100"},"value":[1,"1"]},'
    block = series * 2000
    while True:
        h.raw(block)


def claims_700_mb(h: Handler) -> None:
    h.head(Content_Length=str(700 * 1024 * 1024))
    h.raw(b'{"status":"success","data":{"resultType":"vector","result":[')
    time.sleep(5)
