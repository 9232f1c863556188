"""`--datasources`: Grafana's provisioning interpolation, create/update/read-only by uid."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from flobs.errors import InputError
from flobs.grafana.datasources import read_datasources
from tests.grafana.fake_grafana import FakeGrafana, Fault
from tests.grafana.grafana_cases import dashboard
from tests.grafana.test_grafana_cli import push_cli

LOKI_PASSWORD = "s3cr3t-loki-pass"
PROVISIONING = """\
apiVersion: 1
datasources:
  - name: Flintlock Prometheus
    type: prometheus
    uid: flobs-prometheus
    url: http://prometheus.example.internal:9090
    access: proxy
    isDefault: true
    editable: false
    jsonData:
      httpMethod: POST
      timeInterval: 15s
  - name: Flintlock Loki
    type: loki
    uid: flobs-loki
    url: https://loki.example.internal
    access: proxy
    basicAuth: true
    basicAuthUser: flobs
    editable: false
    jsonData:
      derivedFields:
        - datasourceUid: flobs-tempo
          matcherRegex: "traceID=(\\\\w+)"
          name: TraceID
          url: "$${__value.raw}"
    secureJsonData:
      basicAuthPassword: ${FLOBS_LOKI_PASSWORD}
"""
ENV = {"FLOBS_LOKI_PASSWORD": LOKI_PASSWORD}


def test_create_interpolates_like_grafana_and_sends_secrets_only_in_secure_json_data(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    result = push_cli(out, "--datasources", url=fake_grafana.url, env=ENV)
    assert result.code == 0, result.stderr
    posts = fake_grafana.requests("POST", "/api/datasources")
    assert [p.body["uid"] for p in posts] == ["flobs-prometheus", "flobs-loki"]
    loki = posts[1].body
    assert loki["jsonData"]["derivedFields"][0]["url"] == "${__value.raw}"  # $$ → $
    assert loki["jsonData"]["derivedFields"][0]["matcherRegex"] == "traceID=(\\w+)"
    assert loki["secureJsonData"] == {"basicAuthPassword": LOKI_PASSWORD}
    assert LOKI_PASSWORD not in str({k: v for k, v in loki.items() if k != "secureJsonData"})
    assert "editable" not in loki  # a file-provisioning setting, not an API field
    # Datasources exist before the dashboards that query them are saved.
    calls = fake_grafana.calls()
    assert calls.index("POST /api/datasources") < calls.index("POST /api/dashboards/db")
    assert "datasources: 2 create" in result.stderr


def test_second_push_leaves_datasources_alone(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    assert push_cli(out, "--datasources", url=fake_grafana.url, env=ENV).code == 0
    fake_grafana.log.clear()
    result = push_cli(out, "--datasources", url=fake_grafana.url, env=ENV)
    assert result.code == 0
    assert fake_grafana.writes() == []
    assert "datasources: 2 unchanged" in result.stderr


def test_changed_datasource_is_updated_by_uid_with_its_version(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    assert push_cli(out, "--datasources", url=fake_grafana.url, env=ENV).code == 0
    fake_grafana.log.clear()
    make_out(
        dashboard("hosts"),
        datasources=PROVISIONING.replace("timeInterval: 15s", "timeInterval: 30s"),
    )
    result = push_cli(out, "--datasources", url=fake_grafana.url, env=ENV)
    assert result.code == 0, result.stderr
    [put] = fake_grafana.requests("PUT", "/api/datasources/uid/flobs-prometheus")
    assert put.body["version"] == 1
    assert put.body["jsonData"]["timeInterval"] == "30s"
    assert [r.path for r in fake_grafana.writes()] == ["/api/datasources/uid/flobs-prometheus"]
    assert fake_grafana.datasources[(1, "flobs-prometheus")]["version"] == 2


def test_force_resends_secrets_for_rotation(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    assert push_cli(out, "--datasources", url=fake_grafana.url, env=ENV).code == 0
    fake_grafana.log.clear()
    rotated = {"FLOBS_LOKI_PASSWORD": "s3cr3t-loki-pass-rotated"}
    result = push_cli(out, "--datasources", "--force", url=fake_grafana.url, env=rotated)
    assert result.code == 0
    [put] = fake_grafana.requests("PUT", "/api/datasources/uid/flobs-loki")
    assert put.body["secureJsonData"] == {"basicAuthPassword": "s3cr3t-loki-pass-rotated"}
    assert "s3cr3t-loki-pass-rotated" not in result.stdout + result.stderr


def test_read_only_datasource_is_skipped_with_a_warning(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_datasource(
        {"uid": "flobs-loki", "name": "Flintlock Loki", "type": "loki", "url": "http://old"},
        read_only=True,
    )
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    result = push_cli(out, "--datasources", url=fake_grafana.url, env=ENV)
    assert result.code == 0
    assert "warning: datasource flobs-loki: read-only" in result.stderr
    assert fake_grafana.requests("PUT", "/api/datasources/uid/flobs-loki") == []
    assert fake_grafana.datasources[(1, "flobs-loki")]["url"] == "http://old"


def test_grafana_refusing_a_read_only_update_is_a_skip(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_datasource(
        {
            "uid": "flobs-prometheus",
            "name": "Flintlock Prometheus",
            "type": "prometheus",
            "url": "http://old",
        }
    )
    fake_grafana.fault(
        "PUT",
        "/api/datasources/uid/flobs-prometheus",
        Fault(status=403, body={"message": "Cannot update read-only data source"}),
    )
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    result = push_cli(out, "--datasources", "--format", "json", url=fake_grafana.url, env=ENV)
    assert result.code == 0
    assert '"detail": "Cannot update read-only data source"' in result.stdout
    assert len(fake_grafana.requests("PUT", "/api/datasources/uid/flobs-prometheus")) == 1


def test_name_clash_is_a_conflict(fake_grafana: FakeGrafana, make_out: Callable[..., Path]) -> None:
    fake_grafana.add_datasource(
        {"uid": "someone-else", "name": "Flintlock Loki", "type": "loki", "url": "http://x"}
    )
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    result = push_cli(out, "--datasources", url=fake_grafana.url, env=ENV)
    assert result.code == 1
    assert "conflict" in result.stdout
    assert [p.status for p in fake_grafana.requests("POST", "/api/datasources")] == [200, 409]


def test_unset_variable_is_exit_2_before_any_request(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    assert "FLOBS_LOKI_PASSWORD" not in os.environ
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    result = push_cli(out, "--datasources", url=fake_grafana.url)
    assert result.code == 2
    assert (
        "$.datasources[1].secureJsonData.basicAuthPassword: environment variable "
        "FLOBS_LOKI_PASSWORD is not set"
    ) in result.stderr
    assert fake_grafana.log == []


def test_dry_run_shows_secret_names_never_values(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    assert push_cli(out, "--datasources", url=fake_grafana.url, env=ENV).code == 0
    del fake_grafana.datasources[(1, "flobs-loki")]["secure"]["basicAuthPassword"]
    fake_grafana.log.clear()
    result = push_cli(out, "--datasources", "--dry-run", url=fake_grafana.url, env=ENV)
    assert result.code == 0
    assert fake_grafana.writes() == []
    assert "would update" in result.stdout
    assert '+ "secureJsonFields": {' in result.stdout
    assert '+  "basicAuthPassword": true' in result.stdout


def test_lost_answer_to_a_datasource_create_that_landed(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.fault("POST", "/api/datasources", Fault(status=502, land=True))
    out = make_out(dashboard("hosts"), datasources=PROVISIONING)
    result = push_cli(out, "--datasources", url=fake_grafana.url, env=ENV)
    assert result.code == 0, result.stderr
    assert [p.body["uid"] for p in fake_grafana.requests("POST", "/api/datasources")] == [
        "flobs-prometheus",
        "flobs-loki",
    ]


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("a$$b", {}, "a$b"),
        ("$$$X", {"X": "v"}, "$v"),
        ("${X}-$Y", {"X": "1", "Y": "2"}, "1-2"),
        ("$__env{X}", {"X": "from-env"}, "from-env"),
        ("$${X}", {}, "${X}"),
        ("cost: 5$", {}, "cost: 5$"),
    ],
)
def test_interpolation_matches_grafana_provisioning(
    tmp_path: Path, value: str, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "grafana" / "provisioning" / "datasources"
    path.mkdir(parents=True)
    (path / "flobs.yaml").write_text(
        "apiVersion: 1\ndatasources:\n  - {name: n, uid: u, type: t, url: " + f"'{value}'" + "}\n",
        encoding="utf-8",
    )
    [spec] = read_datasources(tmp_path, env)
    assert spec.plain["url"] == expected


def test_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n", encoding="utf-8")
    path = tmp_path / "grafana" / "provisioning" / "datasources"
    path.mkdir(parents=True)
    (path / "flobs.yaml").write_text(
        "apiVersion: 1\ndatasources:\n  - name: n\n    uid: u\n    type: t\n"
        f"    secureJsonData:\n      password: $__file{{{secret}}}\n",
        encoding="utf-8",
    )
    [spec] = read_datasources(tmp_path, {})
    assert spec.secure == {"password": "from-file"}
    assert "from-file" not in repr(spec)
    (path / "flobs.yaml").write_text(
        "apiVersion: 1\ndatasources:\n  - name: n\n    uid: u\n    type: t\n"
        f"    secureJsonData:\n      password: $__file{{{tmp_path / 'missing'}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="datasources file"):
        read_datasources(tmp_path, {})
