"""The HTTP API of a log or trace store (Loki, Tempo, VictoriaLogs, Jaeger), bounded
like every remote call of flobs (:mod:`flobs.httpio`).

:class:`StoreAPI` is the one base of the clients verify uses (``flobs.live.signals``)
and of the fuller ones the demo and the tests use (``flobs.live.stores``). Every
request has a total deadline (a dripping or silent server is cut off at ``timeout``,
and at the command's ``--deadline``), the answer is capped at :data:`MAX_ANSWER_BYTES`,
TLS is verified, redirects are not followed and no proxy or netrc is read from the
environment. Every failure is a :class:`~flobs.errors.RemoteError` that names the store
and the URL (userinfo redacted, as in every FlobsError), or a UsageError for a URL that
cannot be parsed; never an httpx exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Self

import httpx

from flobs import httpio
from flobs.errors import RemoteError, UsageError

MAX_ANSWER_BYTES = 32 * httpio.MiB
DEFAULT_TIMEOUT = 15.0


class StoreAPI:
    """GETs of one store's API. A client per request: nothing stays open between runs,
    so :meth:`close` has nothing to do (it is there so stores are closed alike)."""

    kind = "store"  # what errors call it: "Loki at http://…"

    def __init__(
        self,
        url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._transport = transport

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to close (a client per request)."""

    def where(self, path: str = "") -> str:
        return f"{self.kind} at {self.url}{path}"

    def _new_client(self) -> httpx.Client:
        # The bounded transport clamps every socket operation to the request's total
        # deadline; it verifies TLS.
        return httpx.Client(
            base_url=self.url,
            timeout=self.timeout,
            transport=self._transport or httpio.BoundedTransport(),
            follow_redirects=False,
            trust_env=False,
        )

    def fetch(self, path: str, params: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        """GET ``path``: (status, body), whatever the status."""
        where = self.where(path)
        try:
            with self._new_client() as client:
                answer = httpio.fetch(
                    client,
                    "GET",
                    path,
                    timeout=self.timeout,
                    max_bytes=MAX_ANSWER_BYTES,
                    params=params or {},
                )
        except httpio.ResponseTooLarge as err:
            raise RemoteError(f"{where}: {err}") from None
        except httpio.DeadlinePassed as err:
            raise RemoteError(
                f"{where}: {err}",
                hint="the server is overloaded, or drips its answer; --timeout changes the limit",
            ) from None
        except httpx.HTTPError as err:
            raise RemoteError(
                f"cannot reach {where}: {type(err).__name__}: {err}",
                hint="is it running, and is the URL the store's base URL?",
            ) from None
        except httpx.InvalidURL as err:  # not an HTTPError: the URL was never sent
            raise UsageError(f"{self.kind} URL {self.url!r} is not a valid URL ({err})") from None
        return answer.status, answer.content

    def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """The body of a 200 answer; any other status is a RemoteError quoting it."""
        status, raw = self.fetch(path, params)
        text = raw.decode("utf-8", errors="replace")
        if status != 200:
            said = text[:200].strip() or "an empty body"
            raise RemoteError(f"{self.where(path)} answered HTTP {status}: {said!r}")
        return text

    def get_lines(self, path: str, params: Mapping[str, str] | None = None) -> list[Any]:
        """A 200 answer of one JSON document per line (VictoriaLogs' LogsQL)."""
        docs = []
        for line in self.get_text(path, params).splitlines():
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except ValueError:
                raise RemoteError(
                    f"{self.where(path)}: a line is not JSON: {line[:200]!r}"
                ) from None
        return docs

    def get(
        self, path: str, params: Mapping[str, str] | None = None, *, not_found_ok: bool = False
    ) -> tuple[int, Any]:
        """A JSON answer: (200, document), or (404, None) when ``not_found_ok``."""
        where = self.where(path)
        status, raw = self.fetch(path, params)
        if status in (401, 403):
            raise RemoteError(f"{where} refused the request (HTTP {status})")
        if status == 404 and not_found_ok:
            return status, None
        if status == 404:
            raise RemoteError(f"{where} answered HTTP 404", hint=f"give the {self.kind} base URL")
        try:
            body = json.loads(raw)
        except ValueError:
            said = raw[:200].decode("utf-8", errors="replace").strip() or "an empty body"
            raise RemoteError(
                f"{where} answered HTTP {status}, not JSON: {said!r}",
                hint=f"give the {self.kind} base URL",
            ) from None
        if status != 200:
            raise RemoteError(f"{where} answered HTTP {status}: {str(body)[:200]}")
        return status, body
