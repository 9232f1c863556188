"""One HTTP client for Grafana's API: timeouts, TLS, auth, bounded retries.

The rules it follows come from grafana-api.md:

* Proxies in front of Grafana answer 429/502/503/504, often with HTML bodies and
  sometimes ``Retry-After``; those (and connection failures) are retried with
  exponential backoff and jitter, bounded in attempts *and* in total time, and every
  retry sends the very same bytes (the Terraform provider once re-sent empty bodies
  under parallelism and got 422s).
* 400/401/403 are never retried: they will not change, and hammering a refused
  token only fills Grafana's logs.
* A write whose outcome is unknown (the connection broke after the request was
  sent, or 500/502/504 came back) is *not* blindly re-sent here: the caller checks
  with a GET whether it landed (:class:`OutcomeUnknown`).

The credentials go into the ``Authorization`` header and nowhere else: every text
that can reach a person (messages, reprs) is passed through :meth:`redact`.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flobs import __version__, httpio, redact
from flobs.errors import RemoteError, UsageError

# The biggest answer read: a search over thousands of dashboards is a few MB.
MAX_ANSWER_BYTES = 32 * httpio.MiB

# Statuses a proxy or an overloaded Grafana sends when the request was not processed.
RETRY_SAFE_STATUSES = frozenset({429, 503})
# Statuses after which a write may or may not have been applied upstream: a 502/504
# proxy answer can hide a Grafana that did the work; a 500 can come after the commit.
AMBIGUOUS_WRITE_STATUSES = frozenset({500, 502, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Credentials:
    """A service-account token (bearer) or a basic-auth user; repr never shows secrets."""

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = ""  # where they came from, for messages: "$GRAFANA_TOKEN"

    def __post_init__(self) -> None:
        # Known to the redaction layer from the moment they exist.
        self.headers()

    def headers(self) -> dict[str, str]:
        if self.token:
            return httpio.bearer(self.token)
        if self.username is not None and self.password is not None:
            # Basic auth built by httpx would be equally fine; building it here keeps
            # every credential in one header we control (and its base64 redacted).
            return httpio.basic(self.username, self.password)
        return {}

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.password) if s)


# The default names the variable holding the token, not a token (S107 misfires).
def credentials_from_env(env: Mapping[str, str], token_env: str = "GRAFANA_TOKEN") -> Credentials:  # noqa: S107
    """Bearer token from ``$token_env``, else basic auth from GRAFANA_USER/GRAFANA_PASSWORD."""
    token = env.get(token_env, "").strip()
    if token:
        return Credentials(token=token, source=f"${token_env}")
    user = env.get("GRAFANA_USER", "")
    password = env.get("GRAFANA_PASSWORD", "")
    if user and password:
        return Credentials(
            username=user, password=password, source="$GRAFANA_USER/$GRAFANA_PASSWORD"
        )
    raise UsageError(
        f"no Grafana credentials: ${token_env} is not set (nor GRAFANA_USER and GRAFANA_PASSWORD)",
        hint=f"export {token_env}=<service-account token> (Grafana → Administration → "
        "Service accounts), or --token-env NAME to read another variable",
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in total seconds."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    budget: float = 60.0  # the most one request may take, waits included

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Wait before retry number ``retry`` (1-based): doubling, with "equal jitter"
        so concurrent workers that failed together do not come back together."""
        full = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return float(full / 2 + rng.uniform(0, full / 2))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class GrafanaResponse:
    status: int
    body: Any  # parsed JSON, or None when the body was not JSON
    text: str


class GrafanaHTTPError(RemoteError):
    """Grafana (or a proxy in front of it) answered with an error status."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        server_message: str,
        *,
        status_text: str = "",
        hint: str | None = None,
        base_url: str = "",
    ) -> None:
        shown = f"{method} {base_url}{path}: HTTP {status}"
        super().__init__(f"{shown}: {server_message}" if server_message else shown, hint=hint)
        self.method = method
        self.path = path
        self.status = status
        self.server_message = server_message
        self.status_text = status_text  # Grafana's machine-readable `status`, if any


class AuthRefused(GrafanaHTTPError):
    """401, or 403 where nothing can proceed: the token, user or org is refused."""


class GrafanaUnreachable(RemoteError):
    """No usable answer: connection refused, TLS failure, timeouts, or retries exhausted."""

    def __init__(
        self, message: str, *, hint: str | None = None, last: GrafanaResponse | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.last = last  # the last answer, when retries ran out on an error status


class OutcomeUnknown(RemoteError):
    """A write was sent but its answer was lost or ambiguous; it may have landed."""


class GrafanaClient:
    """A thread-safe client for one Grafana base URL and organisation."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        org_id: int | None = None,
        timeout: float = 10.0,
        ca_file: Path | None = None,
        insecure_skip_verify: bool = False,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        extra_secrets: tuple[str, ...] = (),
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography
        self._rng_lock = threading.Lock()
        self._secrets = tuple(s for s in (*credentials.secrets(), *extra_secrets) if s)
        redact.register(*self._secrets)
        headers = {
            "Accept": "application/json",
            "User-Agent": f"flobs/{__version__}",
            **credentials.headers(),
        }
        if org_id is not None:
            headers["X-Grafana-Org-Id"] = str(org_id)
        verify: ssl.SSLContext | bool
        if insecure_skip_verify:
            verify = False
        else:
            verify = ssl.create_default_context()
            if ca_file is not None:
                try:
                    verify.load_verify_locations(cafile=str(ca_file))
                except (OSError, ssl.SSLError) as err:
                    raise UsageError(
                        f"--ca-file {ca_file}: cannot load CA certificates: {err}",
                        hint="pass a PEM file with the CA that signed Grafana's certificate",
                    ) from None
        # Connect fails fast; the whole answer must arrive within `timeout` (httpio).
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeouts,
            limits=limits,
            transport=transport or httpio.BoundedTransport(verify=verify, limits=limits),
            follow_redirects=False,
            trust_env=False,
        )

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GrafanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def redact(self, text: str) -> str:
        """Hide every credential and secret that could be echoed back in ``text``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact.redact(text)

    def add_secrets(self, *secrets: str) -> None:
        """Further values to hide (datasource secrets read from the environment)."""
        self._secrets = tuple(dict.fromkeys((*self._secrets, *(s for s in secrets if s))))
        redact.register(*secrets)

    def pause(self, seconds: float) -> None:
        """Wait, through the injectable sleep (tests run without real waits)."""
        self._sleep(seconds)

    def _jitter_backoff(self, retry: int) -> float:
        with self._rng_lock:
            return self.retry.backoff(retry, self._rng)

    # ------------------------------------------------------------------ requests
    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params).body

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body).body

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body=body).body

    def delete(self, path: str) -> Any:
        """DELETE is not retried blindly: a lost answer raises ``OutcomeUnknown``."""
        return self.request("DELETE", path).body

    def search_dashboards(self, **filters: str) -> list[dict[str, Any]]:
        """Every ``dash-db`` hit of ``GET /api/search`` (``folderUIDs``, ``tag``, …), all pages."""
        limit = 1000  # Grafana's default page size (grafana-api.md)
        hits: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {**filters, "type": "dash-db", "limit": str(limit), "page": str(page)}
            body = self.get("/api/search", params=params)
            batch = [h for h in body if isinstance(h, dict)] if isinstance(body, list) else []
            hits.extend(batch)
            if len(body if isinstance(body, list) else []) < limit:
                return hits
            page += 1

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        expect_json: bool = True,
    ) -> GrafanaResponse:
        """Send one request, retrying what is safe to retry; raise on any error status.

        The body is serialised once, so every attempt sends identical bytes.
        """
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        idempotent = method in IDEMPOTENT_METHODS
        started = self._clock()
        attempt = 0
        last: GrafanaResponse | None = None
        while True:
            attempt += 1
            wait: float | None = None
            last = None
            try:
                response = httpio.fetch(
                    self._http,
                    method,
                    path,
                    timeout=self.timeout,
                    max_bytes=self.max_bytes,
                    content=content,
                    params=params,
                    headers=headers,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
                # Nothing reached Grafana: safe to retry for every method.
                failure: str = self._describe(err)
                if isinstance(err, httpx.ConnectError) and _is_tls_failure(err):
                    raise GrafanaUnreachable(
                        f"{method} {self.base_url}{path}: TLS failure: {failure}",
                        hint="pass --ca-file with the CA that signed Grafana's certificate; "
                        "--insecure-skip-verify only for throw-away test instances",
                    ) from None
            except (
                httpx.ReadTimeout,
                httpx.WriteTimeout,
                httpx.ReadError,
                httpx.WriteError,
                httpx.RemoteProtocolError,
            ) as err:
                failure = self._describe(err)
                if not idempotent:
                    raise OutcomeUnknown(
                        f"{method} {self.base_url}{path}: the answer was lost ({failure}); "
                        "the change may or may not have been applied"
                    ) from None
            except httpx.HTTPError as err:
                raise GrafanaUnreachable(
                    f"{method} {self.base_url}{path}: {self._describe(err)}"
                ) from None
            else:
                result = self._parse(response)
                status = response.status
                if 200 <= status < 300:
                    if expect_json and result.body is None:
                        raise GrafanaHTTPError(
                            method,
                            path,
                            status,
                            f"answered with a non-JSON body ({_snippet(self.redact(result.text))})",
                            hint="is --grafana-url Grafana itself and not a login page or proxy?",
                            base_url=self.base_url,
                        )
                    return result
                if not idempotent and status in AMBIGUOUS_WRITE_STATUSES:
                    raise OutcomeUnknown(
                        f"{method} {self.base_url}{path}: HTTP {status} ({self._message(result)}); "
                        "the change may or may not have been applied"
                    )
                retryable = status in RETRY_SAFE_STATUSES or (
                    idempotent and status in AMBIGUOUS_WRITE_STATUSES - {500}
                )
                if not retryable:
                    raise self._error(method, path, status, result)
                failure = f"HTTP {status} ({self._message(result)})"
                last = result
                wait = parse_retry_after(response.headers.get("Retry-After"))
            elapsed = self._clock() - started
            if attempt >= self.retry.attempts:
                raise GrafanaUnreachable(
                    f"{method} {self.base_url}{path}: giving up after {_attempts(attempt)} in "
                    f"{elapsed:.1f}s; last: {failure}",
                    hint="Grafana or a proxy in front of it is failing; try again later",
                    last=last,
                )
            delay = wait if wait is not None else self._jitter_backoff(attempt)
            if elapsed + delay > self.retry.budget:
                why = (
                    f"Grafana asked to retry after {delay:.0f}s"
                    if wait is not None
                    else "the next retry"
                )
                raise GrafanaUnreachable(
                    f"{method} {self.base_url}{path}: giving up after {_attempts(attempt)}: "
                    f"{why} would pass the {self.retry.budget:.0f}s retry budget; last: {failure}",
                    hint="Grafana or a proxy in front of it is overloaded; try again later",
                    last=last,
                )
            self._sleep(delay)

    # ------------------------------------------------------------------ responses
    def _parse(self, response: httpio.Answer) -> GrafanaResponse:
        text = response.text
        body: Any = None
        if text.strip():
            try:
                body = json.loads(text)
            except (ValueError, RecursionError):
                body = None
        return GrafanaResponse(response.status, body, text)

    def _message(self, result: GrafanaResponse) -> str:
        """Grafana's own message; for HTML or other text, a short tag-free excerpt."""
        if isinstance(result.body, dict) and isinstance(result.body.get("message"), str):
            return self.redact(result.body["message"])
        if result.body is not None:
            return _snippet(self.redact(json.dumps(result.body, ensure_ascii=False)))
        if not result.text.strip():
            return "empty body"
        kind = "HTML page" if "<" in result.text and ">" in result.text else "non-JSON body"
        return f"{kind}: {_snippet(self.redact(result.text))}"

    def _error(
        self, method: str, path: str, status: int, result: GrafanaResponse
    ) -> GrafanaHTTPError:
        message = self._message(result)
        status_text = ""
        if isinstance(result.body, dict) and isinstance(result.body.get("status"), str):
            status_text = result.body["status"]
        if status == 401:
            return AuthRefused(
                method,
                path,
                status,
                message,
                status_text=status_text,
                hint=f"check the credentials in {self.credentials.source or 'the environment'}"
                " and that they belong to the organisation selected with --org-id",
                base_url=self.base_url,
            )
        return GrafanaHTTPError(
            method, path, status, message, status_text=status_text, base_url=self.base_url
        )

    def _describe(self, err: httpx.HTTPError) -> str:
        text = str(err) or type(err).__name__
        return self.redact(f"{type(err).__name__}: {text}")


def check_base_url(url: str) -> str:
    """Grafana's base URL without a trailing slash; credentials in it are refused."""
    return httpio.check_url(url, "--grafana-url", "https://grafana.example.internal")


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def _snippet(text: str, limit: int = 160) -> str:
    flat = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _is_tls_failure(err: httpx.ConnectError) -> bool:
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(err) or "SSL" in str(err)
