"""The HTTP client on its own: TLS, Retry-After, redaction, transports."""

from __future__ import annotations

import email.utils
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from flobs.errors import UsageError
from flobs.grafana.client import (
    Credentials,
    GrafanaClient,
    GrafanaHTTPError,
    GrafanaUnreachable,
    RetryPolicy,
    check_base_url,
    credentials_from_env,
    parse_retry_after,
)
from tests.conftest import require_tool
from tests.grafana.fake_grafana import FakeGrafana
from tests.grafana.grafana_cases import TOKEN, dashboard
from tests.grafana.test_grafana_cli import push_cli


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the real openssl."""
    openssl = require_tool("openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_grafana(certificate: tuple[Path, Path]) -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    fake.add_token(TOKEN)
    fake.start(tls=(str(certificate[0]), str(certificate[1])))
    try:
        yield fake
    finally:
        fake.stop()


def test_tls_is_verified_by_default(
    tls_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    result = push_cli(make_out(dashboard("hosts")), url=tls_grafana.url)
    assert result.code == 3
    assert "TLS failure" in result.stderr and "--ca-file" in result.stderr
    assert tls_grafana.log == []


def test_ca_file_trusts_the_private_ca(
    tls_grafana: FakeGrafana, certificate: tuple[Path, Path], make_out: Callable[..., Path]
) -> None:
    result = push_cli(
        make_out(dashboard("hosts")), "--ca-file", str(certificate[0]), url=tls_grafana.url
    )
    assert result.code == 0, result.stderr
    assert "warning" not in result.stderr
    assert tls_grafana.dashboard("hosts")["dashboard"]["version"] == 1


def test_insecure_skip_verify_works_and_warns(
    tls_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    result = push_cli(make_out(dashboard("hosts")), "--insecure-skip-verify", url=tls_grafana.url)
    assert result.code == 0, result.stderr
    assert "TLS verification is off" in result.stderr


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    import random

    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    rng = random.Random(7)
    for retry, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (2, 4), (2, 4)], start=1):
        for _ in range(20):
            assert low <= policy.backoff(retry, rng) <= high


def test_credentials_never_in_repr_or_messages() -> None:
    creds = Credentials(token=TOKEN, source="$GRAFANA_TOKEN")
    assert TOKEN not in repr(creds)
    basic = Credentials(username="ci", password="pw-SECRET")
    assert "pw-SECRET" not in repr(basic)
    echo = httpx.MockTransport(
        lambda request: httpx.Response(
            400, json={"message": f"bad header {request.headers['authorization']}"}
        )
    )
    client = GrafanaClient("https://grafana.test", creds, transport=echo)
    with client, pytest.raises(GrafanaHTTPError) as info:
        client.get("/api/folders/x")
    assert TOKEN not in info.value.message
    assert "Bearer ***" in info.value.message


def test_injected_transport_and_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"database": "ok"})

    with GrafanaClient(
        "https://grafana.test/",
        Credentials(token=TOKEN),
        org_id=3,
        transport=httpx.MockTransport(handler),
    ) as client:
        assert client.get("/api/health") == {"database": "ok"}
    assert str(seen[0].url) == "https://grafana.test/api/health"
    assert seen[0].headers["X-Grafana-Org-Id"] == "3"
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_connection_errors_are_retried_then_reported() -> None:
    calls = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused", request=request)

    waits: list[float] = []
    with (
        GrafanaClient(
            "https://grafana.test",
            Credentials(token=TOKEN),
            transport=httpx.MockTransport(refuse),
            sleep=waits.append,
            retry=RetryPolicy(attempts=3),
        ) as client,
        pytest.raises(GrafanaUnreachable, match="giving up after 3 attempts"),
    ):
        client.post("/api/dashboards/db", {"dashboard": {}})
    assert calls == 3 and len(waits) == 2


@pytest.mark.parametrize("url", ["grafana.example", "ftp://x", "https://u:p@grafana"])
def test_bad_base_urls(url: str) -> None:
    with pytest.raises(UsageError):
        check_base_url(url)


def test_credentials_from_env_prefers_the_token() -> None:
    env = {"GRAFANA_TOKEN": TOKEN, "GRAFANA_USER": "u", "GRAFANA_PASSWORD": "p"}
    assert credentials_from_env(env).headers() == {"Authorization": f"Bearer {TOKEN}"}
    basic = credentials_from_env({"GRAFANA_USER": "u", "GRAFANA_PASSWORD": "p"})
    assert basic.headers()["Authorization"] == "Basic dTpw"
    with pytest.raises(UsageError, match=r"\$CI_TOKEN is not set"):
        credentials_from_env({}, "CI_TOKEN")


def test_grafana_under_a_sub_path() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"database": "ok"})

    with GrafanaClient(
        "https://proxy.test/grafana/",
        Credentials(token=TOKEN),
        transport=httpx.MockTransport(handler),
    ) as client:
        client.get("/api/health")
    assert seen == ["https://proxy.test/grafana/api/health"]
