"""`flobs verify` against fake Prometheus APIs: exit codes, auth, dashboards, rules.

No real Prometheus here: these cover what the live tests cannot provoke cheaply
(unreachable server, refused credentials, broken queries, unexpected hosts).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import pytest

from flobs import resources
from flobs.inventory import load_fleet
from flobs.live.demo import demo_inventory, write_inventory
from flobs.live.prometheus_api import PrometheusAPI
from flobs.live.verify import verify
from flobs.model import Fleet
from tests.conftest import free_port
from tests.e2e.fake_prometheus import Answering, healthy, vector
from tests.helpers import run_flobs

TOKEN = "s3cr3t-token-value"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    write_inventory(demo_inventory(2, tmp_path, first_address="127.0.3.11", cluster="t"), path)
    return path


@pytest.fixture
def fleet(inventory: Path) -> Fleet:
    return load_fleet(inventory).fleet


def api_with(answer: Any) -> PrometheusAPI:
    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params.get("query", "")
        status, body = answer(q)
        return httpx.Response(status, json=body)

    return PrometheusAPI("http://prom.test", transport=httpx.MockTransport(handler))


def test_unexpected_and_missing_hosts(fleet: Fleet) -> None:
    def answer(q: str) -> tuple[int, Any]:
        return 200, healthy(q, ["t-1", "ghost-9"])

    report = verify(fleet, api_with(answer))
    states = {h.name: h.state for h in report.hosts}
    assert states == {"t-1": "present", "t-2": "missing"}
    assert report.unexpected_hosts == ["ghost-9"]
    assert not report.ok


def test_stale_host(fleet: Fleet) -> None:
    def answer(q: str) -> tuple[int, Any]:
        if q.startswith("time() - max by (host)"):
            return 200, vector(({"host": "t-1"}, 2.0), ({"host": "t-2"}, 900.0))
        return 200, healthy(q, ["t-1", "t-2"])

    report = verify(fleet, api_with(answer))
    assert [(h.name, h.state) for h in report.hosts] == [("t-1", "present"), ("t-2", "stale")]
    assert "900s old" in report.hosts[1].detail


def _write_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "grafana" / "dashboards").mkdir(parents=True)
    (out / "central" / "rules").mkdir(parents=True)
    (out / "manifest.json").write_text("{}")
    dashboard = {
        "title": "D",
        "templating": {
            "list": [
                {"name": "ds", "type": "datasource", "query": "prometheus"},
                {"name": "host", "type": "query", "query": "label_values(up, host)"},
                {
                    "name": "ns",
                    "type": "query",
                    "query": 'label_values(microvm:x{host="$host"}, namespace)',
                },
            ]
        },
        "panels": [
            {
                "title": "Fleet",
                "datasource": {"uid": "${ds}"},
                "targets": [
                    {"refId": "A", "expr": "sum(host:ok)"},
                    {"refId": "B", "expr": "sum(host:none)"},
                ],
            },
            {
                "type": "row",
                "title": "Row",
                "collapsed": True,
                "panels": [
                    {
                        "title": "Per host",
                        "targets": [
                            {"refId": "A", "expr": 'host:ok{host="$host",namespace="$ns"}'}
                        ],
                    },
                    {"title": "Broken", "targets": [{"refId": "B", "expr": "sum(host:bad"}]},
                ],
            },
            {
                "title": "Logs",
                "datasource": {"type": "loki", "uid": "flobs-loki"},
                "targets": [{"refId": "A", "expr": '{host="$host"}'}],
            },
        ],
    }
    (out / "grafana" / "dashboards" / "d.json").write_text(json.dumps(dashboard))
    (out / "central" / "rules" / "r.yml").write_text(
        "groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: sum(host:ok)\n"
        "  - alert: Down\n    expr: up == 0\n"
    )
    return out


def test_panels_rows_variables_and_rules(fleet: Fleet, tmp_path: Path) -> None:
    out = _write_out(tmp_path)
    seen: list[str] = []

    def answer(q: str) -> tuple[int, Any]:
        seen.append(q)
        if q == "sum(host:bad":
            return 400, {"status": "error", "errorType": "bad_data", "error": "unclosed paren"}
        if q.startswith("group by (namespace)"):
            host = q.split('host="')[1].split('"')[0]
            return 200, vector(({"namespace": f"ns-of-{host}"}, 1))
        if q == 'host:ok{host="t-1",namespace="ns-of-t-1"}':
            return 200, vector(({"host": "t-1"}, 1))
        if q in ("sum(host:ok)",):
            return 200, vector(({}, 3))
        return 200, healthy(q, ["t-1", "t-2"])

    report = verify(fleet, api_with(answer), out=out)
    # Panels are counted as panels, each with its queries under it.
    assert [(p.title, p.outcome, [q.title for q in p.queries]) for p in report.panels] == [
        ("Fleet", "partial", ["Fleet [A]", "Fleet [B]"]),
        ("Per host", "partial", ["Per host [A]"]),
        ("Broken", "error", ["Broken [B]"]),
        ("Logs", "skipped", ["Logs [A]"]),
    ]
    assert report.panels[1].hosts_without_data == ("t-2",)
    counts = report.panel_counts()
    assert (counts.total, counts.data, counts.partial, counts.no_data) == (4, 0, 2, 0)
    assert (counts.errors, counts.skipped) == (1, 1)
    assert json.loads(report.to_json())["summary"]["panels"] == {
        "total": 4,
        "data": 0,
        "partial": 2,
        "no_data": 0,
        "errors": 1,
        "skipped": 1,
    }
    by_title = {q.title: q for p in report.panels for q in p.queries}
    by_title.update({q.title: q for q in report.queries})
    assert by_title["Fleet [A]"].outcome == "data"
    assert by_title["Fleet [B]"].outcome == "no data"
    per_host = by_title["Per host [A]"]
    assert per_host.outcome == "partial"  # t-2's namespace query has no data
    assert per_host.hosts_without_data == ("t-2",)
    # The dependent variable was resolved per host, the way Grafana would.
    assert 'host:ok{host="t-2",namespace="ns-of-t-2"}' in seen
    assert by_title["Broken [B]"].outcome == "error"
    assert "unclosed paren" in by_title["Broken [B]"].detail
    assert by_title["Logs [A]"].outcome == "skipped"
    assert by_title["a:b"].outcome == "data"
    assert by_title["Down"].outcome == "no data"  # an alert that is not firing
    assert [q.title for q in report.query_errors] == ["Broken [B]"]
    assert not report.ok


class _Recorder(BaseHTTPRequestHandler):
    seen_auth: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen_auth.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_token_from_env_is_sent_never_printed(inventory: Path, refusing_server: str) -> None:
    _Recorder.seen_auth.clear()
    r = run_flobs(
        "verify",
        "-i",
        inventory,
        "--prometheus",
        refusing_server,
        env={"FLOBS_PROMETHEUS_TOKEN": TOKEN},
    )
    assert r.code == 3
    assert "refused the request (HTTP 401)" in r.stderr
    assert _Recorder.seen_auth and _Recorder.seen_auth[0] == f"Bearer {TOKEN}"
    assert TOKEN not in r.stdout + r.stderr


def test_unreachable_prometheus_exits_3(inventory: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = run_flobs("verify", "-i", inventory, "--prometheus", url)
    assert (r.code, r.stdout) == (3, "")
    assert f"cannot reach Prometheus at {url}" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "'xml' is not one of 'text', 'json', 'html'."),
        (["--stale-after", "soon"], "--stale-after 'soon' is not a duration"),
        (["--out", "/nonexistent-flobs-out"], "is not a flobs output tree"),
        (["--prometheus", "prom:9090"], "is not an http(s) URL"),
        (["--wait", "soon"], "--wait 'soon' is not a duration"),
        (["--listen", "127.0.0.1:9465"], "--listen needs --every"),
        (["--every", "1m", "--wait", "1m"], "--every and --wait do not go together"),
        (["--every", "1m", "--listen", "nowhere"], "--listen 'nowhere' is not HOST:PORT"),
        (["--every", "500ms"], "--every '500ms' is shorter than a second"),
        (["--loki", "http://a", "--victorialogs", "http://b"], "give one log store"),
        (["--tempo", "http://a", "--jaeger", "http://b"], "give one trace store"),
        (["--jaeger", "jaeger:16686"], "--jaeger 'jaeger:16686' is not an http(s) URL"),
        # Every store URL goes through the check --prometheus gets: httpx could not even
        # parse this one (it was an internal error), and credentials are refused.
        (["--loki", "http://[::1"], "--loki 'http://[::1' is not a valid URL (Invalid IPv6 URL)"),
        (
            ["--tempo", "https://u:pw-never-shown@tempo.example"],
            "--tempo must not contain credentials (user:password@)",
        ),
        (["--sample", "2"], "--sample needs --deep"),
    ],
)
def test_usage_errors_exit_2(inventory: Path, args: list[str], message: str) -> None:
    r = run_flobs("verify", "-i", inventory, *args)
    assert r.code == 2, r.stderr
    assert message in r.stderr
    assert "pw-never-shown" not in r.stdout + r.stderr


def test_query_string_reaches_server() -> None:
    # The query goes out URL-encoded under /api/v1/query (what every compatible API takes).
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json=vector(({"a": "b"}, 2)))

    api = PrometheusAPI("http://prom.test/prefix", transport=httpx.MockTransport(handler))
    assert api.query('up{job="x"}')[0].value == 2
    url = urlsplit(str(captured[0].url))
    assert url.path == "/prefix/api/v1/query"
    assert parse_qs(url.query)["query"] == ['up{job="x"}']


def test_per_host_panels_can_be_limited_to_the_first_hosts(fleet: Fleet, tmp_path: Path) -> None:
    out = _write_out(tmp_path)
    seen: list[str] = []

    def answer(q: str) -> tuple[int, Any]:
        seen.append(q)
        return 200, healthy(q, ["t-1", "t-2"])

    report = verify(fleet, api_with(answer), out=out, panel_hosts=1)
    assert any('host="t-1"' in q and q.startswith("host:ok") for q in seen)
    assert not any('host="t-2"' in q and q.startswith("host:ok") for q in seen)
    assert "per-host panels were run for the first 1 of 2 hosts (--panel-hosts)" in report.notes


def test_credentials_over_remote_plain_http_are_flagged() -> None:
    env = {"FLOBS_PROMETHEUS_TOKEN": TOKEN}
    assert PrometheusAPI.from_env("http://prom.example:9090", env).credentials_in_plaintext
    assert not PrometheusAPI.from_env("https://prom.example", env).credentials_in_plaintext
    assert not PrometheusAPI.from_env("http://127.0.0.1:9090", env).credentials_in_plaintext
    assert not PrometheusAPI.from_env("http://prom.example:9090", {}).credentials_in_plaintext
    basic = {"FLOBS_PROMETHEUS_USERNAME": "u", "FLOBS_PROMETHEUS_PASSWORD": "p"}
    assert PrometheusAPI.from_env("http://prom.example", basic).credentials_in_plaintext


def test_freshness_is_asked_per_name_and_only_for_well_formed_names(fleet: Fleet) -> None:
    seen: list[str] = []

    def answer(q: str) -> tuple[int, Any]:
        seen.append(q)
        if q.startswith("count by (__name__)"):
            return 200, vector(({"__name__": "host:a"}, 2), ({"__name__": 'x"} or vector(1'}, 1))
        if q.startswith("time() - max by (host)"):
            return 200, vector(({"host": "t-1"}, 2.5), ({"host": "t-2"}, 3.5))
        return 200, healthy(q, ["t-1", "t-2"])

    report = verify(fleet, api_with(answer))
    fresh = [q for q in seen if q.startswith("time() -")]
    assert fresh == [
        'time() - max by (host) (label_replace(max by (host) (timestamp({__name__="host:a"})), '
        '"flobs_series", "0", "", ""))'
    ]
    assert [(h.name, h.age_seconds) for h in report.hosts] == [("t-1", 2.5), ("t-2", 3.5)]


def test_text_and_json_give_the_same_panel_numbers(
    inventory: Path, tmp_path: Path, answering_server: type[Answering]
) -> None:
    out = _write_out(tmp_path)

    def answer(q: str) -> tuple[int, Any]:
        if q == "sum(host:bad":
            return 400, {"status": "error", "errorType": "bad_data", "error": "unclosed paren"}
        if q == "sum(host:ok)":
            return 200, vector(({}, 3))
        return 200, healthy(q, ["t-1", "t-2"])

    answering_server.answer = staticmethod(answer)
    url = answering_server.url  # type: ignore[attr-defined]
    args = ("verify", "-i", inventory, "--prometheus", url, "--out", out)
    text = run_flobs(*args)
    as_json = run_flobs(*args, "--format", "json")
    assert (text.code, as_json.code) == (1, 1), text.stderr + as_json.stderr
    doc = json.loads(as_json.stdout)
    jsonschema.validate(doc, resources.schema("verify-report.schema.json"))
    assert doc["summary"]["panels"] == {
        "total": 4,
        "data": 0,
        "partial": 1,
        "no_data": 1,
        "errors": 1,
        "skipped": 1,
    }
    assert (
        "panels: 4 (0 with data, 1 partial, 1 without data, 1 errors, 1 skipped: not Prometheus)\n"
        "  partial  D / Fleet\n"
        "           [A] data\n"
        "           [B] no data\n"
        "  no data  D / Per host\n"
        "           [A] no data: no data for any host\n"
        "  error    D / Broken\n"
        "           [B] error: bad_data: unclosed paren\n"
        "             expr: sum(host:bad\n"
        "  skipped  D / Logs\n"
        "           [A] skipped: loki datasource\n"
    ) in text.stdout, text.stdout


def _arriving_after(rounds: int) -> Any:
    """t-2 arrives at the centre after ``rounds`` verify runs."""
    seen = {"runs": 0}

    def answer(q: str) -> tuple[int, Any]:
        if q.startswith("count by (host)"):
            seen["runs"] += 1
        hosts = ["t-1", "t-2"] if seen["runs"] > rounds else ["t-1"]
        return 200, healthy(q, hosts)

    return staticmethod(answer)


def test_wait_reruns_until_every_host_is_present(
    inventory: Path, answering_server: type[Answering]
) -> None:
    answering_server.answer = _arriving_after(2)
    url = answering_server.url  # type: ignore[attr-defined]
    started = time.monotonic()
    r = run_flobs("verify", "-i", inventory, "--prometheus", url, "--wait", "60s")
    assert r.code == 0, r.stdout + r.stderr
    assert "hosts: 2/2 present" in r.stdout
    assert time.monotonic() - started < 30
    assert r.stderr == ""  # no terminal: no progress lines


def test_wait_gives_up_at_the_deadline_with_the_last_report(
    inventory: Path, answering_server: type[Answering]
) -> None:
    answering_server.answer = _arriving_after(10_000)
    url = answering_server.url  # type: ignore[attr-defined]
    started = time.monotonic()
    r = run_flobs("verify", "-i", inventory, "--prometheus", url, "--wait", "3s")
    took = time.monotonic() - started
    assert r.code == 1, r.stdout + r.stderr
    assert "result: FAILED (1 host(s) not present: t-2)" in r.stdout
    assert 3 <= took < 15, took


def test_wait_on_an_unreachable_centre_exits_3_after_the_deadline(inventory: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    r = run_flobs("verify", "-i", inventory, "--prometheus", url, "--wait", "2s")
    assert (r.code, r.stdout) == (3, "")
    assert f"cannot reach Prometheus at {url}" in r.stderr
    assert time.monotonic() - started >= 2


def test_wait_shows_progress_on_a_terminal(
    inventory: Path, answering_server: type[Answering]
) -> None:
    answering_server.answer = _arriving_after(1)
    url = answering_server.url  # type: ignore[attr-defined]
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flobs",
            "verify",
            "-i",
            str(inventory),
            "--prometheus",
            url,
            "--wait",
            "60s",
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=60,
        check=False,
    )
    os.close(follower)
    shown = b""
    while select.select([leader], [], [], 0.2)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.returncode == 0
    assert re.search(rb"verify: attempt 1: 1/2 hosts present; \d+s left", shown), shown


def test_html_report_on_stdout(inventory: Path, answering_server: type[Answering]) -> None:
    answering_server.answer = _arriving_after(10_000)  # t-2 never arrives
    url = answering_server.url  # type: ignore[attr-defined]
    r = run_flobs("verify", "-i", inventory, "--prometheus", url, "--format", "html")
    assert r.code == 1, r.stderr
    assert r.stdout.startswith("<!DOCTYPE html>")
    assert '<tr data-host="t-1"><th>t-1</th><td class="ok" data-signal="metrics"' in r.stdout
    assert (
        '<tr data-host="t-2"><th>t-2</th><td class="missing" data-signal="metrics" '
        'data-state="missing">missing</td>'
    ) in r.stdout
    assert '<span id="verdict">FAILED</span>' in r.stdout
