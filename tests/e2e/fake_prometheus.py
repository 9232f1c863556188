"""A Prometheus query API on a real socket, answering from a function (for verify's tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest


def vector(*items: tuple[dict[str, str], float]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1.0, str(v)]} for m, v in items],
        },
    }


def healthy(query: str, hosts: list[str]) -> dict[str, Any]:
    """What a centre holding every host answers to verify's host queries."""
    if query.startswith("count by (host)"):
        return vector(*(({"host": h}, 40) for h in hosts))
    if query.startswith("count by (__name__)"):
        return vector(({"__name__": "host:a"}, 2), ({"__name__": "microvm:b"}, 2))
    if query.startswith("time() - max by (host)"):
        return vector(*(({"host": h}, 1.5) for h in hosts))
    if query.startswith("max by (host)"):
        return vector(*(({"host": h}, 1) for h in hosts))
    return vector()


class Answering(BaseHTTPRequestHandler):
    """A Prometheus API on a real socket, answering with ``answer(query)``."""

    answer: ClassVar[Any] = None

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query).get("query", [""])[0]
        if url.path != "/api/v1/query":
            status, body = 404, {"status": "error", "errorType": "not_found", "error": url.path}
        else:
            status, body = type(self).answer(query)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def answering_server() -> Iterator[type[Answering]]:
    handler = type("Handler", (Answering,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()
