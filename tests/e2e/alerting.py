"""Real Alertmanager (and vmalert) next to a test fleet, and a webhook sink to read what
it delivers. Processes run under the fleet's Supervisor, so they stop with the fleet.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flobs.live.processes import Supervisor
from flobs.model import Fleet
from tests.conftest import require_tool


@dataclass
class Notification:
    received: float  # time.monotonic()
    body: dict[str, Any]

    def alerts(self) -> list[tuple[str, str, str]]:
        """(status, alertname, host) of every alert in the notification."""
        return [
            (a["status"], a["labels"]["alertname"], a["labels"].get("host", ""))
            for a in self.body["alerts"]
        ]


@dataclass
class WebhookSink:
    """An HTTP server on 127.0.0.1 that keeps every Alertmanager webhook POST."""

    url: str = ""
    notifications: list[Notification] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(
        self, done: Callable[[list[Notification]], bool], timeout: float
    ) -> list[Notification]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = list(self.notifications)
            if done(got):
                return got
            time.sleep(0.2)
        with self._lock:
            return list(self.notifications)


@contextmanager
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            with sink._lock:
                sink.notifications.append(Notification(time.monotonic(), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


def start_alertmanager(sup: Supervisor, fleet: Fleet, out: Path, data: Path) -> str:
    """The generated central/alertmanager.yml in a real Alertmanager; its base URL."""
    binary = require_tool("prometheus-alertmanager", "alertmanager")
    am = fleet.central.alertmanager
    assert am is not None
    sup.start(
        "alertmanager",
        [
            binary,
            f"--config.file={out / 'central' / 'alertmanager.yml'}",
            f"--web.listen-address={am.listen}",
            f"--storage.path={data}",
            "--cluster.listen-address=",  # no gossip: it would bind 0.0.0.0:9094
            "--log.level=warn",
        ],
    )
    url = am.urls[0]
    sup.wait_ready("alertmanager", f"{url}/-/ready")
    return url


def start_vmalert(sup: Supervisor, out: Path) -> None:
    """vmalert with exactly the flags flobs generated (central/vmalert.args)."""
    binary = require_tool("vmalert")
    args = [
        line
        for line in (out / "central" / "vmalert.args").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    sup.start("vmalert", [binary, *args, "-loggerLevel=WARN"], cwd=out / "central")
    listen = next(a.split("=", 1)[1] for a in args if a.startswith("-httpListenAddr="))
    sup.wait_ready("vmalert", f"http://{listen}/health", expect="OK")


def alertmanager_inventory(
    sink: WebhookSink, port: int, *, vmalert_port: int | None = None, **alerts: Any
) -> dict[str, Any]:
    """central.* keys for a test fleet: a webhook to ``sink``, fast grouping, short ``for:``."""
    am: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "receivers": [{"name": "sink", "webhook": [{"url": sink.url}]}],
        "group_wait": "1s",
        "group_interval": "2s",
        "repeat_interval": "1h",
    }
    if vmalert_port is not None:
        am["vmalert_listen"] = f"127.0.0.1:{vmalert_port}"
    return {"alertmanager": am, "alerts": alerts}
