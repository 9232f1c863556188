"""push-dashboards never shows a credential, whatever a proxy or Grafana echoes back.

Each case sets distinctive secret values, lets the server echo them in the forms a
real proxy or Grafana does (the bare token, the base64 basic-auth header), and
greps everything the command printed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from tests.grafana.fake_grafana import FakeGrafana, Fault
from tests.grafana.grafana_cases import TOKEN, dashboard
from tests.helpers import run_flobs

USER, PASSWORD = "ci-pusher", "Pw-Distinctive-7f3a9c"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
LOKI_TOKEN = "LokiTok-Distinctive-91b2e4"
DATASOURCES = """\
apiVersion: 1
datasources:
  - name: flobs-loki
    uid: flobs-loki
    type: loki
    url: http://loki.example:3100
    jsonData:
      httpHeaderName1: Authorization
    secureJsonData:
      httpHeaderValue1: Bearer ${FLOBS_LOKI_TOKEN}
"""


def _env(**extra: str) -> dict[str, str]:
    return {"GRAFANA_TOKEN": "", "GRAFANA_USER": "", "GRAFANA_PASSWORD": "", **extra}


def test_a_rejecting_proxy_that_echoes_the_basic_auth_header_shows_no_credential(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_user(USER, PASSWORD)
    out = make_out(dashboard("hosts"))
    page = (
        "<html><body><h1>403 Forbidden</h1><pre>GET /api/health HTTP/1.1\n"
        f"Authorization: Basic {BASIC}\n</pre></body></html>"
    )
    fake_grafana.fault("GET", "/api/health", Fault(status=403, body=page, content_type="text/html"))
    result = run_flobs(
        "push-dashboards",
        out,
        "--grafana-url",
        fake_grafana.url,
        env=_env(GRAFANA_USER=USER, GRAFANA_PASSWORD=PASSWORD),
        timeout=60,
    )
    text = result.stdout + result.stderr
    assert result.code == 3, text
    assert "HTTP 403" in result.stderr
    assert "Authorization: Basic ***" in result.stderr
    assert BASIC not in text and PASSWORD not in text


def test_a_datasource_error_that_echoes_the_bare_loki_token_shows_no_token(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"), datasources=DATASOURCES)
    fake_grafana.fault(
        "POST",
        "/api/datasources",
        Fault(status=400, body={"message": f"invalid header value {LOKI_TOKEN}"}),
    )
    result = run_flobs(
        "push-dashboards",
        out,
        "--datasources",
        "--format",
        "json",
        "--grafana-url",
        fake_grafana.url,
        env=_env(GRAFANA_TOKEN=TOKEN, FLOBS_LOKI_TOKEN=LOKI_TOKEN),
        timeout=60,
    )
    text = result.stdout + result.stderr
    assert result.code == 1, text
    assert "invalid header value ***" in result.stdout
    assert LOKI_TOKEN not in text
