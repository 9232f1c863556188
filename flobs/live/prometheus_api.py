"""A small client for the Prometheus HTTP query API (Prometheus, VictoriaMetrics, Mimir, Thanos).

Credentials come from the environment only and are never echoed:
``FLOBS_PROMETHEUS_TOKEN`` (bearer) or ``FLOBS_PROMETHEUS_USERNAME`` +
``FLOBS_PROMETHEUS_PASSWORD`` (basic auth); ``FLOBS_PROMETHEUS_CA_FILE`` adds a CA
bundle. TLS verification is always on. They are registered with the redaction layer
the moment they are read.

Every request is bounded (``flobs.httpio``): a total deadline, the command's deadline
and a size cap. Query answers are parsed as they stream in, one series at a time, so
a large vector is never held as text plus a parsed tree. Whatever the server sends —
an error status, HTML from a proxy, JSON of the wrong shape, text where numbers
belong — ends as :class:`QueryFailed` (the server refused this one expression) or a
:class:`~flobs.errors.RemoteError` naming the URL, never as an internal error.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from flobs import httpio
from flobs.errors import RemoteError, UsageError
from flobs.redact import strip_userinfo

ENV_TOKEN = "FLOBS_PROMETHEUS_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_USERNAME = "FLOBS_PROMETHEUS_USERNAME"
ENV_PASSWORD = "FLOBS_PROMETHEUS_PASSWORD"  # noqa: S105 - the variable's name, not a secret
ENV_CA_FILE = "FLOBS_PROMETHEUS_CA_FILE"

MAX_ANSWER_BYTES = 64 * httpio.MiB
MAX_ERROR_BYTES = 1 * httpio.MiB  # an error answer is a message, not data
MAX_SERIES_BYTES = 1 * httpio.MiB  # one series of a vector or matrix
# Parsed series cost ~0.7 KB each in Python; 200,000 is ~140 MB, and far more than any
# query flobs runs needs (the per-host panels are filtered to one host).
MAX_SERIES = 200_000
_PREFIX_LIMIT = 64 * 1024  # where `"data": {"result": [` must start for streaming
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)$")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class QueryFailed(RemoteError):
    """The server answered, but refused or failed this one expression.

    ``str()`` is the server's short ``errorType: error`` (what verify reports per
    query); the message the CLI shows, should nobody catch it, names the URL.
    """

    def __init__(self, error_type: str, message: str, *, where: str = "Prometheus") -> None:
        super().__init__(
            f"{where}: the query failed: {error_type}: {message}",
            hint="a query flobs needs failed on the server; check its log",
        )
        self.error_type = error_type
        self.server_message = message
        self._short = f"{error_type}: {message}"

    def __str__(self) -> str:
        return self._short


class _Malformed(Exception):
    """The answer is not what the Prometheus API documents; the text says how."""


class _TooMany(Exception):
    """The answer holds more series than one query may bring back."""


class PrometheusAPI:
    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 15.0,
        max_bytes: int = MAX_ANSWER_BYTES,
        max_series: int = MAX_SERIES,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown_url = strip_userinfo(self.url)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_series = max_series
        self.sends_credentials = auth is not None or "Authorization" in (headers or {})
        self._client = httpx.Client(
            base_url=self.url,
            headers=dict(headers or {}),
            auth=auth,
            transport=transport or httpio.BoundedTransport(verify=verify),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )

    @classmethod
    def from_env(
        cls,
        url: str,
        env: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> PrometheusAPI:
        env = os.environ if env is None else env
        headers: dict[str, str] = {}
        token = env.get(ENV_TOKEN)
        user, password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
        if token and user:
            raise UsageError(
                f"both {ENV_TOKEN} and {ENV_USERNAME} are set", hint="set one way of authenticating"
            )
        if token:
            headers.update(httpio.bearer(token))
        elif user:
            if password is None:
                raise UsageError(f"{ENV_USERNAME} is set but {ENV_PASSWORD} is not")
            headers.update(httpio.basic(user, password))
        verify: ssl.SSLContext | bool = True
        if env.get(ENV_CA_FILE):
            try:
                verify = ssl.create_default_context(cafile=env[ENV_CA_FILE])
            except (OSError, ssl.SSLError) as err:
                raise UsageError(f"{ENV_CA_FILE}: cannot read {env[ENV_CA_FILE]}: {err}") from err
        url = httpio.check_url(url, "--prometheus", "http://prometheus.example:9090")
        return cls(url, headers=headers, verify=verify, transport=transport)

    @property
    def credentials_in_plaintext(self) -> bool:
        """Credentials would cross the network unencrypted (http:// to a remote host)."""
        parts = httpx.URL(self.url)
        local = parts.host in ("localhost", "::1") or parts.host.startswith("127.")
        return self.sends_credentials and parts.scheme == "http" and not local

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusAPI:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def _remote_error(self, path: str, what: str, hint: str | None = None) -> RemoteError:
        return RemoteError(f"Prometheus at {self.shown_url}{path}: {what}", hint=hint)

    def _request(
        self, path: str, params: Mapping[str, str], parse: Callable[[Iterator[bytes]], Any]
    ) -> Any:
        """GET ``path``; a 200 JSON answer goes to ``parse`` as a stream of chunks."""
        try:
            with (
                httpio.deadline(self.timeout, self.shown_url + path) as end,
                self._client.stream("GET", path, params=params) as resp,
            ):
                status = resp.status_code
                kind = resp.headers.get("Content-Type", "")
                limit = self.max_bytes if status == 200 else MAX_ERROR_BYTES
                chunks = httpio.stream_body(resp, max_bytes=limit, end=end, seconds=self.timeout)
                if status == 200 and "html" not in kind:
                    return parse(chunks)
                text = b"".join(chunks).decode("utf-8", errors="replace")
        except (httpio.ResponseTooLarge, _TooMany) as err:
            raise self._remote_error(
                path, str(err), hint="ask for less (a narrower query) or check --prometheus"
            ) from None
        except httpio.DeadlinePassed as err:
            raise self._remote_error(
                path, str(err), hint="the server is overloaded or drips its answer"
            ) from None
        except httpx.TransportError as err:
            raise RemoteError(
                f"cannot reach Prometheus at {self.shown_url}: {type(err).__name__}: {err}",
                hint="is it running, and is --prometheus the right URL?",
            ) from None
        except httpx.HTTPError as err:
            raise self._remote_error(path, f"{type(err).__name__}: {err}") from None
        except QueryFailed as err:
            raise QueryFailed(
                err.error_type, err.server_message, where=f"Prometheus at {self.shown_url}{path}"
            ) from None
        except _Malformed as err:
            raise self._remote_error(
                path,
                f"not a Prometheus API answer: {err}",
                hint="--prometheus takes the base URL of a Prometheus-compatible API, "
                "without /api/v1",
            ) from None
        return self._refused(path, status, text)

    def _refused(self, path: str, status: int, text: str) -> Any:
        """A non-200 (or HTML) answer: a query error, a refusal, or not Prometheus at all."""
        if status in (401, 403):
            raise self._remote_error(
                path,
                f"refused the request (HTTP {status})",
                hint=f"set {ENV_TOKEN}, or {ENV_USERNAME} and {ENV_PASSWORD}",
            )
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            raise QueryFailed(
                _text(body.get("errorType", "error")),
                _text(body.get("error", "")),
                where=f"Prometheus at {self.shown_url}{path}",
            )
        raise self._remote_error(
            path,
            f"answered HTTP {status} with {_describe_text(text)}, not a Prometheus API answer",
            hint="--prometheus takes the base URL of a Prometheus-compatible API, without /api/v1",
        )

    # ------------------------------------------------------------------ queries
    def query(self, expr: str) -> list[Sample]:
        """An instant query, now. Scalars come back as one sample without labels."""
        return list(
            self._request(
                "/api/v1/query", {"query": expr}, lambda c: _parse_query(c, self.max_series)
            )
        )

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A GET of another API endpoint (``/api/v1/alerts`` …): its whole JSON envelope."""
        body = self._request(path, params or {}, _parse_whole)
        if not isinstance(body, dict):
            raise self._remote_error(path, "not a Prometheus API answer (not a JSON object)")
        if body.get("status") == "error":
            raise QueryFailed(_text(body.get("errorType", "error")), _text(body.get("error", "")))
        return body

    def federation_errors(self) -> dict[str, str]:
        """host → lastError of the central's federate targets (Prometheus only; best effort)."""
        try:
            body = self._request("/api/v1/targets", {"state": "active"}, _parse_whole)
        except (QueryFailed, RemoteError):
            return {}
        out: dict[str, str] = {}
        data = body.get("data") if isinstance(body, dict) else None
        targets = data.get("activeTargets") if isinstance(data, dict) else None
        for target in targets if isinstance(targets, list) else []:
            if not isinstance(target, dict):
                continue
            labels = target.get("labels")
            if not isinstance(labels, dict):
                continue
            if labels.get("job") == "federate" and target.get("lastError"):
                out[_text(labels.get("host", ""))] = _text(target["lastError"])
        return out


# --------------------------------------------------------------------------- parsing


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)[:200]


def _describe_text(text: str) -> str:
    if not text.strip():
        return "an empty body"
    kind = "an HTML page" if "<" in text and ">" in text else "a non-JSON body"
    flat = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return f"{kind} ({flat[:120]}{'…' if len(flat) > 120 else ''})"


def _number(value: Any, where: str) -> float:
    if not isinstance(value, str) or not _NUMBER.match(value):
        raise _Malformed(f"{where}: the sample value {_text(value)[:40]} is not a number")
    number = float(value)
    if math.isnan(number) and value not in ("NaN",):
        raise _Malformed(f"{where}: the sample value is not a number")
    return number


def _sample(item: Any, index: int) -> Sample:
    where = f"data.result[{index}]"
    if not isinstance(item, dict):
        raise _Malformed(f"{where} is not an object")
    labels = item.get("metric", {})
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise _Malformed(f"{where}.metric is not a map of label names to strings")
    if "value" in item:
        point = item["value"]
    else:  # a matrix; take the newest point
        points = item.get("values")
        if not isinstance(points, list):
            raise _Malformed(f"{where} has neither value nor values")
        point = points[-1] if points else [0, "NaN"]
    if not isinstance(point, list) or len(point) != 2:
        raise _Malformed(f'{where}: a sample is not [timestamp, "value"]')
    return Sample(dict(labels), _number(point[1], where))


def _envelope(doc: Any) -> tuple[str, Any]:
    """(resultType, data) of a success answer; QueryFailed for an error answer."""
    if not isinstance(doc, dict):
        raise _Malformed("the answer is not a JSON object")
    status = doc.get("status")
    if status == "error":
        raise QueryFailed(_text(doc.get("errorType", "error")), _text(doc.get("error", "")))
    if status != "success":
        raise _Malformed(f"status is {_text(status)[:40]}, not success or error")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise _Malformed("data is not an object")
    kind = data.get("resultType")
    if kind not in ("vector", "matrix", "scalar", "string"):
        raise _Malformed(f"data.resultType is {_text(kind)[:40]}")
    return str(kind), data


def _parse_whole(chunks: Iterator[bytes]) -> Any:
    text = _decode(chunks)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _Malformed(f"invalid JSON ({err.msg} at character {err.pos})") from None
    except (ValueError, RecursionError) as err:
        raise _Malformed(f"invalid JSON ({type(err).__name__})") from None


def _decode(chunks: Iterator[bytes]) -> str:
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Malformed(f"not UTF-8 (byte {err.start})") from None


def _parse_query(chunks: Iterator[bytes], max_series: int) -> list[Sample]:
    stream = _ResultStream(chunks)
    samples: list[Sample] = []
    loose: list[Any] = []  # the two parts of a scalar/string result
    for index, item in enumerate(stream.items()):
        if isinstance(item, dict):
            if len(samples) >= max_series:
                raise _TooMany(f"the answer has more than {max_series} series")
            samples.append(_sample(item, index))
        elif len(loose) < 2:
            loose.append(item)
        else:
            raise _Malformed("data.result has an item that is not a series")
    kind, data = _envelope(stream.envelope)
    if stream.streamed:
        result: Any = loose if loose else samples
        if kind in ("vector", "matrix") and loose:
            raise _Malformed(f"data.result[{len(samples)}] is not an object")
    else:
        result = data.get("result")
        if kind in ("vector", "matrix"):
            if not isinstance(result, list):
                raise _Malformed("data.result is not a list")
            if len(result) > max_series:
                raise _TooMany(f"the answer has more than {max_series} series")
            return [_sample(item, i) for i, item in enumerate(result)]
    if kind in ("scalar", "string"):
        if samples or not isinstance(result, list) or len(result) != 2:
            raise _Malformed(f'a {kind} result is not [timestamp, "value"]')
        return [Sample({}, _number(result[1], "data.result"))]
    return samples


class _ResultStream:
    """Parse ``{"status": …, "data": {"resultType": …, "result": [ITEMS]} …}`` as it arrives.

    The items of ``data.result`` are decoded one at a time and handed out; only the
    small rest of the document (the envelope) is kept. An answer that does not open
    ``data.result`` within its first 64 KiB is parsed whole (still under the size cap).
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self.envelope: Any = None
        self.streamed = False

    def _more(self) -> str | None:
        for chunk in self._chunks:
            try:
                text: str = self._decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise _Malformed(f"not UTF-8 ({err.reason})") from None
            if text:
                return text
        return None

    def items(self) -> Iterator[Any]:
        buf = ""
        start: int | None = None
        while start is None:
            more = self._more()
            if more is None:
                break
            buf += more
            start = _result_start(buf[:_PREFIX_LIMIT])
            if start is None and len(buf) > _PREFIX_LIMIT:
                break
        if start is None:  # no streamable result: the (bounded) rest, parsed whole
            while (more := self._more()) is not None:
                buf += more
            self.envelope = _loads(buf)
            return
        self.streamed = True
        prefix, buf, pos = buf[:start], buf[start:], 0
        want = "item or ]"  # then "comma or ]" after an item, "item" after a comma
        while True:
            while True:  # skip whitespace, reading on when the buffer runs out
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf):
                    break
                more = self._more()
                if more is None:
                    raise _Malformed("the answer ends inside data.result")
                buf, pos = buf[pos:] + more, 0
            if buf[pos] == "]" and want != "item":
                break
            if want == "comma or ]":
                if buf[pos] != ",":
                    raise _Malformed("data.result is not a JSON list")
                pos, want = pos + 1, "item"
                continue
            while True:
                try:
                    item, end = self._json.raw_decode(buf, pos)
                    break
                except ValueError:
                    if len(buf) - pos > MAX_SERIES_BYTES:
                        raise _Malformed(
                            f"one series of data.result is over {MAX_SERIES_BYTES} bytes "
                            "or not JSON"
                        ) from None
                    more = self._more()
                    if more is None:
                        raise _Malformed("data.result holds invalid JSON") from None
                    buf, pos = buf[pos:] + more, 0
            yield item
            pos, want = end, "comma or ]"  # the buffer is compacted when read on
        rest = buf[pos:]
        while (more := self._more()) is not None:
            rest += more
        self.envelope = _loads(prefix + rest)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise _Malformed(f"invalid JSON ({err.msg})") from None
    except (ValueError, RecursionError) as err:
        raise _Malformed(f"invalid JSON ({type(err).__name__})") from None


def _result_start(text: str) -> int | None:
    """The index just after the ``[`` of ``data.result``, if ``text`` reaches it.

    A small scanner over the answer's head: it tracks strings (with escapes), the
    nesting and the key each open object is at.
    """
    kinds: list[str] = []
    keys: list[str | None] = []
    last: str | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while True:
                j = text.find('"', j)
                if j == -1:
                    return None
                slashes = 0
                while text[j - 1 - slashes] == "\\":
                    slashes += 1
                if slashes % 2 == 0:
                    break
                j += 1
            last = text[i + 1 : j]
            i = j + 1
            continue
        if c == ":" and kinds and kinds[-1] == "{":
            keys[-1] = last
        elif c in "{[":
            kinds.append(c)
            keys.append(None)
            if (
                c == "["
                and len(kinds) == 3
                and kinds[:2] == ["{", "{"]
                and keys[0] == "data"
                and keys[1] == "result"
            ):
                return i + 1
        elif c in "}]":
            if not kinds:
                return None
            kinds.pop()
            keys.pop()
        i += 1
    return None
