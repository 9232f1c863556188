"""`flobs push-dashboards` through the real entry point: exit codes, output, no leaks.

Every run goes through :func:`push_cli`, which also asserts what must hold for *every*
case: no traceback, and neither the token nor a datasource secret in stdout or stderr.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.grafana.fake_grafana import FakeGrafana, Fault, html_502
from tests.grafana.grafana_cases import OTHER_ORG_TOKEN, TOKEN, VIEWER_TOKEN, dashboard
from tests.helpers import CliResult, run_flobs

DB = "/api/dashboards/db"
EXAMPLE_INVENTORY = Path(__file__).resolve().parents[2] / "examples" / "inventory.yaml"
SECRETS = (
    TOKEN,
    OTHER_ORG_TOKEN,
    VIEWER_TOKEN,
    "hunter2-basic-password",
    "s3cr3t-loki-pass",
    "loki-token-SECRET",
)


def push_cli(
    out: Path,
    *args: str,
    url: str | None = None,
    token: str | None = TOKEN,
    env: dict[str, str] | None = None,
) -> CliResult:
    full_env = {
        "GRAFANA_TOKEN": token or "",
        "GRAFANA_USER": "",
        "GRAFANA_PASSWORD": "",
        **(env or {}),
    }
    argv = ["push-dashboards", str(out), *args]
    if url is not None:
        argv += ["--grafana-url", url]
    result = run_flobs(*argv, env=full_env, timeout=60)
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    for secret in SECRETS:
        assert secret not in text, f"secret leaked: {text}"
    return result


def test_push_then_unchanged_push_makes_zero_writes(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"), dashboard("microvms"))
    first = push_cli(out, url=fake_grafana.url)
    assert first.code == 0, first.stderr
    assert "hosts" in first.stdout and "create" in first.stdout
    assert len(fake_grafana.requests("POST", DB)) == 2
    fake_grafana.log.clear()
    second = push_cli(out, url=fake_grafana.url)
    assert second.code == 0, second.stderr
    assert fake_grafana.writes() == []
    assert "dashboards: 2 unchanged; folders: 1 unchanged" in second.stderr
    assert "create" not in second.stdout


def test_remote_edit_exits_1_and_force_overwrites(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"))
    assert push_cli(out, url=fake_grafana.url).code == 0
    fake_grafana.edit_dashboard("hosts", lambda d: d.update(title="Colleague's edit"))
    fake_grafana.log.clear()
    conflict = push_cli(out, url=fake_grafana.url)
    assert conflict.code == 1
    assert "conflict" in conflict.stdout
    assert "Colleague's edit" in conflict.stdout  # the short diff
    assert fake_grafana.writes() == []
    forced = push_cli(out, "--force", url=fake_grafana.url)
    assert forced.code == 0, forced.stderr
    [post] = fake_grafana.requests("POST", DB)
    assert post.body["overwrite"] is True
    assert fake_grafana.dashboard("hosts")["dashboard"]["title"] == "Flintlock hosts"


@pytest.mark.parametrize(
    ("token", "args", "message"),
    [
        ("glsa_not_a_valid_token_SECRET", (), "Invalid API key"),
        (OTHER_ORG_TOKEN, ("--org-id", "1"), "does not belong to the requested organization"),
        (TOKEN, ("--org-id", "2"), "does not belong to the requested organization"),
    ],
)
def test_refused_credentials_exit_3_without_retry_or_token(
    fake_grafana: FakeGrafana,
    make_out: Callable[..., Path],
    token: str,
    args: tuple[str, ...],
    message: str,
) -> None:
    result = push_cli(make_out(dashboard("hosts")), *args, url=fake_grafana.url, token=token)
    assert result.code == 3
    assert message in result.stderr
    assert "HTTP 401" in result.stderr
    assert "hint:" in result.stderr
    assert token not in result.stderr + result.stdout
    assert fake_grafana.calls() == ["GET /api/health", "GET /api/folders/flobs-flintlock"]
    sent = fake_grafana.requests("GET", "/api/folders/flobs-flintlock")[0]
    assert sent.headers["authorization"] == f"Bearer {token}"
    if "--org-id" in args:
        assert sent.headers["x-grafana-org-id"] == args[1]


def test_viewer_token_cannot_create_the_folder_exit_3(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    result = push_cli(make_out(dashboard("hosts")), url=fake_grafana.url, token=VIEWER_TOKEN)
    assert result.code == 3
    assert "HTTP 403" in result.stderr
    assert fake_grafana.requests("POST", DB) == []
    assert len(fake_grafana.requests("POST", "/api/folders")) == 1


def test_html_502_everywhere_exits_3_with_a_readable_message(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.fault("GET", "/api/health", html_502(), html_502())
    result = push_cli(make_out(dashboard("hosts")), "--retries", "1", url=fake_grafana.url)
    assert result.code == 3
    assert "HTTP 502" in result.stderr and "502 Bad Gateway nginx" in result.stderr
    assert "<html>" not in result.stderr
    assert fake_grafana.calls() == ["GET /api/health"] * 2


def test_unreachable_grafana_exits_3(make_out: Callable[..., Path]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = push_cli(make_out(dashboard("hosts")), "--retries", "1", url=url)
    assert result.code == 3
    assert "unreachable" in result.stderr
    assert "ConnectError" in result.stderr


def test_database_failing_exits_3(fake_grafana: FakeGrafana, make_out: Callable[..., Path]) -> None:
    fake_grafana.database_failing = True
    result = push_cli(make_out(dashboard("hosts")), "--retries", "0", url=fake_grafana.url)
    assert result.code == 3
    assert 'HTTP 503 ({"database": "failing"' in result.stderr
    assert "reports its database is failing" in result.stderr
    assert fake_grafana.calls() == ["GET /api/health"]


def test_not_grafana_behind_the_url_exits_3(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.fault(
        "GET",
        "/api/health",
        Fault(status=200, body="<html>Sign in</html>", content_type="text/html"),
    )
    result = push_cli(make_out(dashboard("hosts")), url=fake_grafana.url)
    assert result.code == 3
    assert "non-JSON body" in result.stderr


@pytest.mark.parametrize(
    "faults",
    [
        [Fault(status=503), Fault(status=503)],
        [Fault(status=429, headers={"Retry-After": "1"})],
        [Fault(status=500, land=True)],
        [Fault(stall=3.0, land=True)],
        [html_502()],
        [Fault(reset=True)],
    ],
    ids=[
        "503-503-200",
        "429-retry-after",
        "500-landed",
        "timeout-mid-response-landed",
        "html-502",
        "reset",
    ],
)
def test_faults_on_the_save_recover_with_exactly_one_stored_save(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], faults: list[Fault]
) -> None:
    fake_grafana.add_folder("flobs-flintlock", "Flintlock")
    fake_grafana.fault("POST", DB, *faults)
    result = push_cli(make_out(dashboard("hosts")), "--timeout", "1", url=fake_grafana.url)
    assert result.code == 0, result.stderr
    assert fake_grafana.dashboard("hosts")["dashboard"]["version"] == 1  # stored exactly once
    posts = fake_grafana.requests("POST", DB)
    assert len({p.raw for p in posts}) == 1, "every retry sends the same body"
    landed = any(f.land for f in faults)
    assert len(posts) == (1 if landed else len(faults) + 1)


def test_provisioned_dashboard_warns_and_exits_0(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_folder("flobs-flintlock", "Flintlock")
    fake_grafana.add_dashboard(dashboard("hosts"), "flobs-flintlock", provisioned=True)
    result = push_cli(make_out(dashboard("hosts")), url=fake_grafana.url)
    assert result.code == 0
    assert "warning: dashboard hosts: provisioned" in result.stderr
    assert fake_grafana.writes() == []


def test_bad_uid_is_rejected_before_any_request(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("fine"), dashboard("no/slashes"))
    result = push_cli(out, url=fake_grafana.url)
    assert result.code == 2
    assert "must match ^[a-zA-Z0-9_-]{1,40}$" in result.stderr
    assert "problem in the dashboards; nothing was written" in result.stderr
    assert fake_grafana.log == []


def test_empty_title_is_rejected_before_any_request(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    result = push_cli(make_out(dashboard("fine", title="")), url=fake_grafana.url)
    assert result.code == 2
    assert "$.title: dashboard title must be a non-empty string" in result.stderr
    assert fake_grafana.log == []


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--folder-uid", "bad uid"), {}, "folder uid 'bad uid' must match"),
        (("--ca-file", "{ca}", "--insecure-skip-verify"), {}, "contradict"),
        ((), {"GRAFANA_TOKEN": ""}, "no Grafana credentials"),
        (("--grafana-url", "ftp://grafana"), {}, "is not an http(s) URL"),
        (("--grafana-url", f"http://admin:{TOKEN}@127.0.0.1:3000"), {}, "must not contain"),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    fake_grafana: FakeGrafana,
    make_out: Callable[..., Path],
    tmp_path: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    message: str,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate", encoding="utf-8")
    argv = [a.replace("{ca}", str(ca)) for a in args]
    url = None if "--grafana-url" in argv else fake_grafana.url
    result = push_cli(make_out(dashboard("hosts")), *argv, url=url, env=env)
    assert result.code == 2
    assert message in result.stderr
    assert fake_grafana.log == []


def test_dry_run_prints_the_plan_with_a_diff_and_writes_nothing(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"))
    assert push_cli(out, url=fake_grafana.url).code == 0
    fake_grafana.log.clear()
    out = make_out(dashboard("hosts", description="shiny"), dashboard("logs"))
    result = push_cli(out, "--dry-run", url=fake_grafana.url)
    assert result.code == 0
    assert fake_grafana.writes() == []
    assert "would update" in result.stdout and "would create" in result.stdout
    assert '+ "description": "shiny",' in result.stdout
    assert "dry run, nothing written" in result.stderr


def test_json_format(fake_grafana: FakeGrafana, make_out: Callable[..., Path]) -> None:
    fake_grafana.add_folder("flobs-flintlock", "Flintlock")
    fake_grafana.add_dashboard(dashboard("hosts", title="Not ours"), "flobs-flintlock")
    out = make_out(dashboard("hosts"), dashboard("logs"))
    result = push_cli(out, "--format", "json", url=fake_grafana.url)
    assert result.code == 1
    doc = json.loads(result.stdout)
    assert doc["grafana"] == {"url": fake_grafana.url, "version": "11.6.0"}
    assert doc["summary"]["conflict"] == 1 and doc["summary"]["create"] == 1
    by_uid = {i["uid"]: i for i in doc["items"] if i["kind"] == "dashboard"}
    assert by_uid["hosts"]["action"] == "conflict"
    assert by_uid["logs"]["action"] == "create" and by_uid["logs"]["version"] == 1
    assert by_uid["logs"]["source"] == "grafana/dashboards/logs.json"


def test_json_format_on_refused_token_keeps_stdout_clean(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    result = push_cli(
        make_out(dashboard("hosts")),
        "--format",
        "json",
        url=fake_grafana.url,
        token="glsa_rejected_SECRET",
    )
    assert result.code == 3
    assert result.stdout == ""
    assert "glsa_rejected_SECRET" not in result.stderr


def test_basic_auth_from_the_environment(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_user("ci", "hunter2-basic-password")
    env = {"GRAFANA_USER": "ci", "GRAFANA_PASSWORD": "hunter2-basic-password"}
    result = push_cli(make_out(dashboard("hosts")), url=fake_grafana.url, token=None, env=env)
    assert result.code == 0, result.stderr
    assert fake_grafana.requests("POST", DB)[0].headers["authorization"].startswith("Basic ")
    bad = push_cli(
        make_out(dashboard("hosts")),
        url=fake_grafana.url,
        token=None,
        env={**env, "GRAFANA_PASSWORD": "wrong-SECRET"},
    )
    assert bad.code == 3
    assert "wrong-SECRET" not in bad.stderr


def test_token_env_names_another_variable(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    result = push_cli(
        make_out(dashboard("hosts")),
        "--token-env",
        "CI_GRAFANA",
        url=fake_grafana.url,
        token=None,
        env={"CI_GRAFANA": TOKEN},
    )
    assert result.code == 0, result.stderr
    assert fake_grafana.requests("POST", DB)[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_url_and_folder_come_from_the_inventory(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], tmp_path: Path
) -> None:
    text = EXAMPLE_INVENTORY.read_text(encoding="utf-8")
    text = text.replace(
        "url: https://grafana.example.internal",
        f"url: {fake_grafana.url}\n    folder_uid: team-flintlock",
    )
    assert fake_grafana.url in text
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(text, encoding="utf-8")
    result = push_cli(make_out(dashboard("hosts")), "-i", str(inventory))
    assert result.code == 0, result.stderr
    assert fake_grafana.requests("POST", "/api/folders")[0].body == {
        "uid": "team-flintlock",
        "title": "Flintlock",
    }
    assert fake_grafana.dashboard("hosts")["folderUid"] == "team-flintlock"


def test_the_generated_example_pushes_then_stays_unchanged(
    fake_grafana: FakeGrafana, example_out: Path
) -> None:
    """What `flobs generate` writes is what gets pushed, and reads back as unchanged."""
    env = {"FLOBS_LOKI_TOKEN": "loki-token-SECRET"}
    first = push_cli(example_out, "--datasources", url=fake_grafana.url, env=env)
    assert first.code == 0, first.stderr
    boards = sorted(p.stem for p in (example_out / "grafana" / "dashboards").glob("*.json"))
    assert boards, "the generator writes dashboards"
    saved = sorted(p.body["dashboard"]["uid"] for p in fake_grafana.requests("POST", DB))
    assert saved == boards
    loki = fake_grafana.requests("POST", "/api/datasources")[1].body
    assert loki["secureJsonData"]["httpHeaderValue2"] == "Bearer loki-token-SECRET"
    assert "loki-token-SECRET" not in first.stdout + first.stderr
    fake_grafana.log.clear()
    second = push_cli(example_out, "--datasources", url=fake_grafana.url, env=env)
    assert second.code == 0, second.stderr
    assert fake_grafana.writes() == []


def test_missing_out_directory_is_exit_2(fake_grafana: FakeGrafana, tmp_path: Path) -> None:
    result = push_cli(tmp_path / "nowhere", url=fake_grafana.url)
    assert result.code == 2
    assert "is not a directory" in result.stderr
    assert fake_grafana.log == []
