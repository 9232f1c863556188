"""One redaction layer: every secret flobs knows, hidden from everything it emits.

Secrets enter the process in few places: credentials read from the environment
(``$GRAFANA_TOKEN``, ``$FLOBS_PROMETHEUS_TOKEN`` …), values a datasource file pulls in
with ``${VAR}`` or ``$__file{…}``, and the user:password part of a URL. Each of those
places calls :func:`register` (or :func:`register_basic_auth`) the moment it reads the
value. Text leaves the process in few places too, and each of them passes it through
:func:`redact`:

* stdout and stderr of every command (the CLI consoles write through :class:`RedactingStream`),
* validate reports in every format (``flobs.report.render``),
* exception messages and hints (``FlobsError.__init__``),
* generated files (``flobs.generate.render_tree``),
* log records, httpx/httpcore debug logs included (:func:`install_log_redaction`).

A secret is hidden in the forms in which a server or a serialiser may echo it: as
is, JSON-escaped, percent-encoded, HTML-escaped, and for basic auth the base64 of
``user:password`` that travels in the ``Authorization`` header. Independently of the
registry, the userinfo of any URL (``scheme://user:pass@host``) is always replaced.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO, cast
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

MASK = "***"
# Shorter values are not treated as secrets: hiding every "ab" would garble output
# and a 3-character password protects nothing anyway.
MIN_SECRET_LENGTH = 4

# scheme://userinfo@ — userinfo stops at the first "/", "?", "#", "@" or whitespace.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s\"'<>]+)@")

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _variants(secret: str) -> set[str]:
    """The forms in which ``secret`` may be echoed back."""
    forms = {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        html.escape(secret),
        html.escape(secret, quote=False),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def register(*secrets: str | None) -> None:
    """Hide these values (and their echoed forms) from everything flobs emits."""
    global _pattern
    added = set()
    for secret in secrets:
        if not secret or len(secret.strip()) < MIN_SECRET_LENGTH:
            continue
        added |= _variants(secret)
        if secret != secret.strip():
            added |= _variants(secret.strip())
    with _lock:
        if added <= _values:
            return
        _values.update(added)
        # Longest first, so a secret that contains another is hidden whole.
        ordered = sorted(_values, key=lambda s: (-len(s), s))
        _pattern = re.compile("|".join(map(re.escape, ordered)))


def register_basic_auth(username: str, password: str) -> None:
    """The password, and the base64 ``user:password`` of the Authorization header."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    register(password, token, f"{username}:{password}")


def register_url(url: str) -> None:
    """The userinfo of ``url``, if it has any (``https://user:pass@host``)."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        register(password)
        if username:
            register_basic_auth(username, password)


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_values)


def reset() -> None:
    """Forget every registered secret (tests; one process runs many commands there)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def redact(text: str) -> str:
    """``text`` without any registered secret and without URL userinfo."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text and "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return text


def has_secrets() -> bool:
    """Whether any secret is registered (URL userinfo is hidden regardless)."""
    return _pattern is not None


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact` for a generated file; bytes that are not UTF-8 pass unchanged."""
    if _pattern is None and not (b"://" in data and b"@" in data):
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    shown = redact(text)
    return data if shown == text else shown.encode("utf-8")


def redact_all(values: Iterable[str]) -> list[str]:
    return [redact(v) for v in values]


def strip_userinfo(url: str) -> str:
    """``url`` as it may be shown: without ``user:pass@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if "@" not in parts.netloc:
        return redact(url)
    host = parts.netloc.rsplit("@", 1)[1]
    return redact(urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)))


def has_userinfo(url: str) -> bool:
    """``url`` carries ``user@`` or ``user:pass@`` before its host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.search(url) is not None
    return "@" in parts.netloc


class RedactingStream:
    """A text stream that redacts every write, then writes to ``sys.<name>``.

    Without a fixed ``target`` it is looked up at each write, so a stream swapped in
    later (a test's CliRunner, pytest's capture) still receives the text.
    """

    def __init__(self, name: str, *, target: TextIO | None = None) -> None:
        self._name = name
        self._target = target

    @property
    def target(self) -> TextIO:
        if self._target is not None:
            return self._target
        stream: TextIO = getattr(sys, self._name)
        return stream

    def write(self, text: str) -> int:
        if isinstance(text, (bytes, bytearray)):
            if not text:
                # click probes a stream with write(b""): a text stream refuses it.
                raise TypeError("write() argument must be str, not bytes")
            # click.echo hands on bytes it has no binary writer for (help output
            # once a closed pipe has been dropped): redacted like any text.
            self.target.write(redact(bytes(text).decode("utf-8", "replace")))
            return len(text)
        self.target.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def redacting(name: str, *, target: TextIO | None = None) -> TextIO:
    """A :class:`RedactingStream` typed as the text stream it stands in for."""
    return cast(TextIO, RedactingStream(name, target=target))


_factory_installed = False


def install_log_redaction() -> None:
    """Redact every log record when it is created (httpx/httpcore debug logs included).

    A logger's filter would miss records of child loggers (``httpcore.http11``), and
    handlers belong to whoever configured logging; the record factory sees them all.
    """
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return record
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, None
        return record

    logging.setLogRecordFactory(factory)
