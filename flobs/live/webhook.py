"""A webhook receiver on loopback that keeps what Alertmanager delivers.

`flobs demo` points its Alertmanager's only receiver here, so a dying host's page can
be read without a chat or pager account; the live tests read the same records.
Alertmanager POSTs one JSON document per notification (webhook payload version 4):
``receiver``, ``status`` and ``alerts``, each alert with ``status``, ``labels`` and
``startsAt``. Each alert of each notification becomes one ``Delivery``.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flobs.errors import SystemFailure, UsageError

# A notification is a few KiB per alert; this bounds what one POST may make us hold.
MAX_BODY_BYTES = 8 * 1024 * 1024
PATH = "/notify"


@dataclass(frozen=True)
class Delivery:
    """One alert as one notification delivered it."""

    received: str  # RFC 3339 UTC, when the POST arrived
    monotonic: float  # time.monotonic() then, for timing tests
    receiver: str
    status: str  # firing | resolved
    alertname: str
    host: str | None
    labels: dict[str, str]
    starts_at: str

    def key(self) -> tuple[str, str, str]:
        """(status, alertname, host) — what a test usually compares."""
        return (self.status, self.alertname, self.host or "")

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "receiver": self.receiver,
            "status": self.status,
            "alertname": self.alertname,
            "host": self.host,
            "labels": self.labels,
            "starts_at": self.starts_at,
        }


def deliveries(body: Any, received: datetime, monotonic: float) -> list[Delivery]:
    """The alerts of one webhook payload; ValueError if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook payload (no alerts list)")
    when = received.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out = []
    for alert in body["alerts"]:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise ValueError("an alert without labels")
        labels = {str(k): str(v) for k, v in sorted(alert["labels"].items())}
        out.append(
            Delivery(
                when,
                monotonic,
                str(body.get("receiver", "")),
                str(alert.get("status", body.get("status", ""))),
                labels.get("alertname", ""),
                labels.get("host"),
                labels,
                str(alert.get("startsAt", "")),
            )
        )
    return out


class WebhookSink:
    """An HTTP server on a loopback address recording every notification POSTed to it.

    ``log``: each payload is appended there as one JSON line.
    ``on_delivery`` runs (in the server's thread) after each accepted POST.
    """

    def __init__(
        self,
        address: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Path | None = None,
        on_delivery: Callable[[], object] | None = None,
    ) -> None:
        if not ipaddress.ip_address(address).is_loopback:
            raise UsageError(f"the webhook sink listens on loopback only, not {address}")
        self.log = log
        self.on_delivery = on_delivery
        self._lock = threading.Lock()
        self._got: list[Delivery] = []
        try:
            self._server = ThreadingHTTPServer((address, port), self._handler())
        except OSError as err:
            raise SystemFailure(f"webhook sink cannot listen on {address}:{port}: {err}") from err
        bound = self._server.server_address[1]  # the port, when ``port`` was 0
        self.url = f"http://{address}:{bound}{PATH}"
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != PATH or not 0 < length <= MAX_BODY_BYTES:
                    self.send_error(404 if self.path != PATH else 413)
                    return
                try:
                    body = json.loads(self.rfile.read(length))
                    got = deliveries(body, datetime.now(UTC), time.monotonic())
                except ValueError as err:  # JSONDecodeError is one
                    self.send_error(400, str(err))
                    return
                sink._record(body, got)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass  # the records are the log

        return Handler

    def _record(self, body: Any, got: list[Delivery]) -> None:
        with self._lock:
            self._got.extend(got)
            if self.log is not None:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                with self.log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(body, ensure_ascii=False) + "\n")
        if self.on_delivery is not None:
            self.on_delivery()

    def start(self) -> WebhookSink:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-sink", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; calling it again does nothing."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()  # closing a closed socket is a no-op

    def received(self) -> list[Delivery]:
        """Every alert delivered so far, in arrival order."""
        with self._lock:
            return list(self._got)

    def wait_for(self, done: Callable[[list[Delivery]], bool], timeout: float) -> list[Delivery]:
        """Poll until ``done(received())`` or ``timeout`` s pass; what was received."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if done(got) or time.monotonic() >= deadline:
                return got
            time.sleep(0.2)

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
