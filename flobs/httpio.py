"""Bounded HTTP for every remote call flobs makes (Grafana, Prometheus-compatible APIs).

httpx's timeouts apply per socket operation: a server that sends one byte a second
never trips a 10 s read timeout, and a 700 MB answer is read whole into memory. Here
every request has

* a **total deadline**: every connect, TLS handshake, write and read is given only the
  time left until the deadline (a network backend that clamps each operation), so a
  dripping server is cut off at the deadline, headers included;
* the **command's deadline** on top (``flobs --deadline SECONDS``, default
  :data:`DEFAULT_COMMAND_DEADLINE`): a command with many requests ends in bounded time;
* a **size cap**: the body is streamed and reading stops past ``max_bytes`` (gzip
  bombs included: the cap counts decoded bytes).

Failures surface as httpx exceptions (so callers keep one way of mapping them), or
as :class:`CommandDeadlinePassed`, a :class:`~flobs.errors.RemoteError`. URLs given on
the command line go through :func:`check_url`; credentials through :func:`bearer`
and :func:`basic`, which register them with the redaction layer before use.
"""

from __future__ import annotations

import base64
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from flobs.errors import RemoteError, UsageError
from flobs.redact import has_userinfo, register, register_basic_auth, register_url, strip_userinfo

DEFAULT_COMMAND_DEADLINE = 600.0  # seconds; `flobs --deadline` / $FLOBS_DEADLINE
MiB = 1024 * 1024

_local = threading.local()  # .deadline: the monotonic time the current request must end by
_command_deadline: float | None = None
_command_seconds: float | None = None


class CommandDeadlinePassed(RemoteError):
    """The whole command ran out of time (``--deadline``)."""


class DeadlinePassed(httpx.ReadTimeout):
    """No complete answer within the request's total deadline."""


class ResponseTooLarge(httpx.HTTPError):
    """The answer grew past the size cap; reading stopped there."""


# --------------------------------------------------------------------------- deadlines


def start_command_deadline(seconds: float | None) -> None:
    """From now on, every request ends within ``seconds`` (None: no command deadline)."""
    global _command_deadline, _command_seconds
    _command_seconds = seconds
    _command_deadline = None if seconds is None else time.monotonic() + seconds


def clear_command_deadline() -> None:
    start_command_deadline(None)


def _command_left() -> float | None:
    if _command_deadline is None:
        return None
    return _command_deadline - time.monotonic()


def command_deadline_error(url: str) -> CommandDeadlinePassed:
    return CommandDeadlinePassed(
        f"{strip_userinfo(url)}: the command's deadline of {_command_seconds:g}s passed",
        hint="the server is slow or drips its answers; raise it with `flobs --deadline SECONDS`",
    )


def _clamp(timeout: float | None, error: type[Exception]) -> float | None:
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own socket backend, with every operation clamped to the deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _clamp(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _clamp(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class BoundedTransport(httpx.HTTPTransport):
    """httpx's transport on the deadline backend. TLS is verified unless told otherwise."""

    def __init__(
        self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits | None = None
    ) -> None:
        limits = limits or httpx.Limits()
        super().__init__(verify=verify, limits=limits, trust_env=False)
        # httpx takes no network backend, so the pool it built is replaced by the same
        # pool on ours (tests/test_httpio.py proves a dripping server is cut off).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@contextmanager
def deadline(seconds: float, url: str) -> Iterator[float]:
    """Run one request (body included) under a total deadline; yields the deadline.

    The command's deadline, when nearer, wins; passing it raises CommandDeadlinePassed.
    """
    now = time.monotonic()
    end = now + seconds
    command = _command_deadline
    by_command = command is not None and command < end
    if by_command:
        assert command is not None
        if command <= now:
            raise command_deadline_error(url)
        end = command
    previous = getattr(_local, "deadline", None)
    _local.deadline = end
    try:
        yield end
    except httpx.TimeoutException as err:
        late = time.monotonic() >= end - 0.05
        if late and by_command:
            raise command_deadline_error(url) from err
        # A connect that timed out sent nothing: callers may retry it as such.
        if late and not isinstance(err, httpx.ConnectTimeout):
            raise DeadlinePassed(f"no complete answer within {seconds:g}s") from err
        raise
    finally:
        _local.deadline = previous


def stream_body(
    response: httpx.Response, *, max_bytes: int, end: float, seconds: float
) -> Iterator[bytes]:
    """The decoded body in chunks, stopping past ``max_bytes`` or the deadline."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ResponseTooLarge(
            f"the answer is {int(length)} bytes, more than the {_size(max_bytes)} limit"
        )
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise ResponseTooLarge(f"the answer is larger than the {_size(max_bytes)} limit")
        if time.monotonic() > end:
            raise DeadlinePassed(f"no complete answer within {seconds:g}s")
        yield chunk


def fetch(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    params: Mapping[str, str] | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One request, its whole answer read within ``timeout`` seconds and ``max_bytes``."""
    shown = str(client.base_url.join(url)) if client.base_url else url
    # The client's own per-operation timeouts stay (a short connect cap, say); the
    # deadline clamps each operation to what is left of ``timeout``.
    with (
        deadline(timeout, shown) as end,
        client.stream(method, url, params=params, content=content, headers=headers) as response,
    ):
        body = b"".join(stream_body(response, max_bytes=max_bytes, end=end, seconds=timeout))
        return Answer(response.status_code, response.headers, body)


def get(url: str, *, timeout: float, max_bytes: int = 16 * MiB) -> Answer:
    """One bounded GET without a long-lived client (readiness probes, the demo)."""
    with httpx.Client(transport=BoundedTransport(), trust_env=False) as client:
        return fetch(client, "GET", url, timeout=timeout, max_bytes=max_bytes)


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n} bytes"


# --------------------------------------------------------------------------- URLs, auth


def check_url(url: str, option: str, example: str) -> str:
    """An http(s) base URL from the command line, without a trailing slash.

    Credentials in it are refused (they would land in shell history, reports and
    CI logs); they are registered with the redaction layer first, so not even the
    refusal can show them.
    """
    register_url(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number or out of range
    except ValueError as err:
        raise UsageError(
            f"{option} {strip_userinfo(url)!r} is not a valid URL ({err})",
            hint=f"for example {option} {example}",
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{option} {strip_userinfo(url)!r} is not an http(s) URL",
            hint=f"for example {option} {example}",
        )
    if has_userinfo(url):
        raise UsageError(
            f"{option} must not contain credentials (user:password@)",
            hint="give them in the environment ($GRAFANA_TOKEN, $FLOBS_PROMETHEUS_TOKEN …) "
            "so they never land in shell history or CI logs",
        )
    if any(c.isspace() for c in url) or parts.fragment:
        raise UsageError(
            f"{option} {url!r} is not a valid base URL", hint=f"for example {option} {example}"
        )
    return url.rstrip("/")


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a bearer token (registered as a secret)."""
    register(token, f"Bearer {token}")
    return {"Authorization": f"Bearer {token}"}


def basic(username: str, password: str) -> dict[str, str]:
    """The Authorization header for basic auth (password and base64 registered)."""
    register_basic_auth(username, password)
    raw = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {raw}"}
