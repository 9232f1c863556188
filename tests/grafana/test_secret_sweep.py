"""One sweep over every command that touches a secret: none of them shows one.

Distinctive values go into every credential variable; the servers echo them back
(a Prometheus that puts the Authorization header into labels and errors, a Grafana
that quotes the token and the bare Loki token in its refusals). Then every byte
flobs produced is searched: stdout and stderr of each run, the validate reports in
every format, and every file in OUT.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.conftest import EXAMPLE_INVENTORY
from tests.grafana.fake_grafana import FakeGrafana, Fault
from tests.helpers import run_flobs
from tests.live.hostile_server import Handler, hostile_server

GRAFANA_TOKEN = "GrafTok-Sweep-a1b2c3d4"
PROM_USER, PROM_PASSWORD = "prom-reader", "PromPw-Sweep-e5f6a7b8"
LOKI_TOKEN = "LokiTok-Sweep-c9d0e1f2"
SECRETS = (
    GRAFANA_TOKEN,
    PROM_PASSWORD,
    base64.b64encode(f"{PROM_USER}:{PROM_PASSWORD}".encode()).decode(),
    LOKI_TOKEN,
)
ENV = {
    "GRAFANA_TOKEN": GRAFANA_TOKEN,
    "GRAFANA_USER": "",
    "GRAFANA_PASSWORD": "",
    "FLOBS_PROMETHEUS_USERNAME": PROM_USER,
    "FLOBS_PROMETHEUS_PASSWORD": PROM_PASSWORD,
    "FLOBS_LOKI_TOKEN": LOKI_TOKEN,
}


def _echo_prometheus(h: Handler) -> None:
    auth = h.headers.get("Authorization", "")
    query = parse_qs(urlsplit(h.path).query).get("query", [""])[0]
    if query.startswith("count by (host)"):
        result = [{"metric": {"host": auth}, "value": [1, "1"]}]
        h.answer(200, {"status": "success", "data": {"resultType": "vector", "result": result}})
    elif "rate(" in query:
        h.answer(400, {"status": "error", "errorType": "bad_data", "error": f"echo {auth}"})
    else:
        h.answer(200, {"status": "success", "data": {"resultType": "vector", "result": []}})


def test_no_command_shows_any_secret_anywhere(fake_grafana: FakeGrafana, tmp_path: Path) -> None:
    fake_grafana.add_token(GRAFANA_TOKEN, org_id=1, role="Editor")
    outputs: list[str] = []

    def flobs(*args: str | Path, expect: set[int]) -> None:
        result = run_flobs(*args, cwd=tmp_path, env=ENV, timeout=120)
        outputs.extend((result.stdout, result.stderr))
        assert result.code in expect, (args, result.stderr)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr

    flobs("generate", "-i", EXAMPLE_INVENTORY, "-o", "out", expect={0})
    for fmt in ("text", "json", "junit", "github"):
        flobs(
            "validate",
            "out",
            "--tools",
            "off",
            "-f",
            fmt,
            "--output",
            f"report.{fmt}",
            expect={0, 1},
        )
    with hostile_server() as prometheus:
        prometheus.default = _echo_prometheus
        for fmt in ("text", "json"):
            flobs(
                "verify",
                "-i",
                EXAMPLE_INVENTORY,
                "--prometheus",
                prometheus.url,
                "--out",
                "out",
                "--format",
                fmt,
                expect={1},
            )
        sent = {s[2].get("Authorization") for s in prometheus.seen}
        assert sent == {f"Basic {SECRETS[2]}"}
    for fmt in ("text", "json"):
        refusal = {"message": f"header value {LOKI_TOKEN} refused"}
        fake_grafana.fault("POST", "/api/datasources", Fault(status=400, body=refusal))
        refusal = {"message": f"token {GRAFANA_TOKEN} may not save"}
        fake_grafana.fault("POST", "/api/dashboards/db", Fault(status=400, body=refusal))
        flobs(
            "push-dashboards",
            "out",
            "--datasources",
            "--grafana-url",
            fake_grafana.url,
            "--format",
            fmt,
            expect={1},
        )

    everything = "\n".join(outputs)
    assert "***" in everything  # the servers' echoes arrived, hidden
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 40 and (tmp_path / "report.junit").is_file()
    for secret in SECRETS:
        assert secret not in everything, secret
        for path in files:
            assert secret.encode() not in path.read_bytes(), (secret, path)
    json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
