"""A small client for the Prometheus HTTP query API (Prometheus, VictoriaMetrics, Mimir, Thanos).

Credentials come from the environment only and are never echoed:
``FLOBS_PROMETHEUS_TOKEN`` (bearer) or ``FLOBS_PROMETHEUS_USERNAME`` +
``FLOBS_PROMETHEUS_PASSWORD`` (basic auth); ``FLOBS_PROMETHEUS_CA_FILE`` adds a CA
bundle. TLS verification is always on.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from flobs.errors import RemoteError, UsageError

ENV_TOKEN = "FLOBS_PROMETHEUS_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_USERNAME = "FLOBS_PROMETHEUS_USERNAME"
ENV_PASSWORD = "FLOBS_PROMETHEUS_PASSWORD"  # noqa: S105 - the variable's name, not a secret
ENV_CA_FILE = "FLOBS_PROMETHEUS_CA_FILE"


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class QueryFailed(Exception):
    """The server answered, but refused or failed this one expression."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


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
    ) -> None:
        self.url = url.rstrip("/")
        self.sends_credentials = auth is not None or "Authorization" in (headers or {})
        self._client = httpx.Client(
            base_url=self.url,
            headers=dict(headers or {}),
            auth=auth,
            verify=verify,
            transport=transport,
            timeout=timeout,
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
        auth: httpx.Auth | None = None
        token = env.get(ENV_TOKEN)
        user, password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
        if token and user:
            raise UsageError(
                f"both {ENV_TOKEN} and {ENV_USERNAME} are set", hint="set one way of authenticating"
            )
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user:
            if password is None:
                raise UsageError(f"{ENV_USERNAME} is set but {ENV_PASSWORD} is not")
            auth = httpx.BasicAuth(user, password)
        verify: ssl.SSLContext | bool = True
        if env.get(ENV_CA_FILE):
            try:
                verify = ssl.create_default_context(cafile=env[ENV_CA_FILE])
            except OSError as err:
                raise UsageError(
                    f"{ENV_CA_FILE}: cannot read {env[ENV_CA_FILE]}: {err.strerror}"
                ) from err
        if not url.startswith(("http://", "https://")):
            raise UsageError(
                f"--prometheus {url!r} is not an http(s) URL",
                hint="e.g. --prometheus http://prometheus.example:9090",
            )
        return cls(url, headers=headers, auth=auth, verify=verify, transport=transport)

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

    def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            resp = self._client.get(path, params=params)
        except httpx.TransportError as err:
            raise RemoteError(
                f"cannot reach Prometheus at {self.url}: {err}",
                hint="is it running, and is --prometheus the right URL?",
            ) from err
        if resp.status_code in (401, 403):
            raise RemoteError(
                f"Prometheus at {self.url} refused the request (HTTP {resp.status_code})",
                hint=f"set {ENV_TOKEN}, or {ENV_USERNAME} and {ENV_PASSWORD}",
            )
        try:
            body: Any = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            raise QueryFailed(str(body.get("errorType", "error")), str(body.get("error", "")))
        if resp.status_code != 200 or not isinstance(body, dict):
            raise RemoteError(
                f"{self.url}{path} answered HTTP {resp.status_code}, not a Prometheus API response",
                hint="--prometheus takes the base URL, without /api/v1",
            )
        return body

    def query(self, expr: str) -> list[Sample]:
        """An instant query, now. Scalars come back as one sample without labels."""
        body = self._get("/api/v1/query", {"query": expr})
        data: dict[str, Any] = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        if kind in ("scalar", "string") and isinstance(result, list):
            return [Sample({}, float(result[1]))]
        samples = []
        for item in result or []:
            value = item.get("value")
            if value is None:  # a matrix; take the newest point
                value = (item.get("values") or [[0, "nan"]])[-1]
            samples.append(Sample(dict(item.get("metric") or {}), float(value[1])))
        return samples

    def federation_errors(self) -> dict[str, str]:
        """host → lastError of the central's federate targets (Prometheus only; best effort)."""
        try:
            body = self._get("/api/v1/targets", {"state": "active"})
        except (QueryFailed, RemoteError):
            return {}
        out: dict[str, str] = {}
        for target in (body.get("data") or {}).get("activeTargets") or []:
            labels = target.get("labels") or {}
            if labels.get("job") == "federate" and target.get("lastError"):
                out[str(labels.get("host", ""))] = str(target["lastError"])
        return out
