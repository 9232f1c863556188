"""Authenticated, encrypted transport: the local Prometheus' web config, the centre's
federate job that matches it, TLS options for scrapes, and warnings for credentials
that would cross the network in plain HTTP."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flobs import tools, yamlio
from flobs.errors import InputError
from flobs.generate import generate
from flobs.inventory import load_fleet
from flobs.problems import Problem
from flobs.validate import validate
from tests.checks.conftest import rehash
from tests.conftest import require_tool
from tests.deploy.certs import make_ca, make_server_cert, write_bcrypt
from tests.helpers import run_flobs

# A two-host fleet; the lines of every key are fixed, so positions can be asserted.
BASE = """\
apiVersion: flobs/v1
cluster: t
defaults:
  local_prometheus:
    listen: 0.0.0.0:9091
    web:
      tls: {cert_file: /etc/flobs/tls/host.pem, key_file: /etc/flobs/tls/host.key}
      basic_auth_users: {fed: fed.bcrypt, ops: ops.bcrypt}
      self_scrape: {username: ops, password_file: /etc/flobs/secrets/ops.password}
  node_exporter:
    tls: {cert_file: /etc/ne.pem, key_file: /etc/ne.key, ca_file: /etc/ca.pem, server_name: ne.t}
hosts:
  - name: h1
    address: 10.0.0.1
  - name: h2
    address: 10.0.0.2
central:
  prometheus:
    url: https://prom.t:9090
    federation:
      ca_file: /etc/flobs/tls/ca.pem
      server_name: flintlock.t
      cert_file: /etc/flobs/tls/centre.pem
      key_file: /etc/flobs/tls/centre.key
      basic_auth: {username: fed, password_file: /etc/flobs/secrets/fed.password}
  loki: {url: https://loki.t/loki/api/v1/push}
  traces: {otlp_endpoint: tempo.t:4317}
  grafana: {url: https://grafana.t}
"""


def _write(tmp_path: Path, text: str = BASE) -> Path:
    write_bcrypt(tmp_path / "fed.bcrypt", "fed-pw")
    write_bcrypt(tmp_path / "ops.bcrypt", "ops-pw")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(text)
    return inv


def _problems(inv: Path) -> list[tuple[int | None, int | None, str | None, str]]:
    with pytest.raises(InputError) as err:
        load_fleet(inv)
    return [(p.line, p.col, p.key_path, p.message) for p in err.value.problems]


def _warnings(inv: Path) -> list[Problem]:
    return list(load_fleet(inv).warnings)


def _yaml(path: Path) -> Any:
    return yamlio.load(path.read_text())


def test_web_config_has_tls_and_the_users_hashes(tmp_path: Path) -> None:
    inv = _write(tmp_path)
    out = tmp_path / "out"
    generate(inv, out)
    web = _yaml(out / "hosts/h1/prometheus-web.yml")
    assert web == {
        "tls_server_config": {
            "cert_file": "/etc/flobs/tls/host.pem",
            "key_file": "/etc/flobs/tls/host.key",
            "min_version": "TLS12",
        },
        "basic_auth_users": {
            "fed": (tmp_path / "fed.bcrypt").read_text().strip(),
            "ops": (tmp_path / "ops.bcrypt").read_text().strip(),
        },
    }
    unit = (out / "hosts/h1/systemd/prometheus.service.d/flobs.conf").read_text()
    assert "--web.config.file=/etc/flobs/prometheus/web.yml" in unit


def test_centre_federates_with_matching_scheme_tls_and_basic_auth(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate(_write(tmp_path), out)
    job = _yaml(out / "central/prometheus.yml")["scrape_configs"][0]
    assert job["job_name"] == "federate"
    assert job["scheme"] == "https"
    assert job["tls_config"] == {
        "ca_file": "/etc/flobs/tls/ca.pem",
        "cert_file": "/etc/flobs/tls/centre.pem",
        "key_file": "/etc/flobs/tls/centre.key",
        "server_name": "flintlock.t",
    }
    assert job["basic_auth"] == {
        "username": "fed",
        "password_file": "/etc/flobs/secrets/fed.password",
    }


def test_local_scrapes_use_tls_options(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate(_write(tmp_path), out)
    jobs = {j["job_name"]: j for j in _yaml(out / "hosts/h1/prometheus.yml")["scrape_configs"]}
    assert jobs["node"]["scheme"] == "https"
    assert jobs["node"]["tls_config"] == {
        "insecure_skip_verify": False,
        "ca_file": "/etc/ca.pem",
        "server_name": "ne.t",
    }
    # The self-scrape goes through the web config too, with its own credential.
    assert jobs["prometheus"]["scheme"] == "https"
    assert jobs["prometheus"]["basic_auth"] == {
        "username": "ops",
        "password_file": "/etc/flobs/secrets/ops.password",
    }


@pytest.mark.tools
def test_promtool_accepts_every_generated_web_config(tmp_path: Path) -> None:
    promtools = sorted(tools.by_major("promtool").items())
    if not promtools:
        require_tool("promtool")
    ca = make_ca(tmp_path / "ca")
    server = make_server_cert(ca, tmp_path / "srv", "h", ["10.0.0.1", "10.0.0.2"])
    text = (
        BASE.replace("/etc/flobs/tls/host.pem", str(server.cert))
        .replace("/etc/flobs/tls/host.key", str(server.key))
        .replace("/etc/ne.pem", str(server.cert))
        .replace("/etc/ne.key", str(server.key))
    )
    out = tmp_path / "out"
    generate(_write(tmp_path, text), out)
    configs = sorted(out.glob("hosts/*/prometheus-web.yml")) + sorted(
        out.glob("hosts/*/exporters/node_exporter-web.yml")
    )
    assert len(configs) == 4
    for major, promtool in promtools:  # both majors when both are installed
        for config in configs:
            r = subprocess.run(
                [promtool, "check", "web-config", str(config)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert r.returncode == 0, (major, config, r.stdout, r.stderr)


def test_hosts_disagreeing_on_tls_is_an_error(tmp_path: Path) -> None:
    tls = "      tls: {cert_file: /etc/flobs/tls/host.pem, key_file: /etc/flobs/tls/host.key}\n"
    text = BASE.replace(tls, "").replace(
        "  - name: h1\n    address: 10.0.0.1\n",
        "  - name: h1\n    address: 10.0.0.1\n"
        "    vars: {local_prometheus: {web: {tls: {cert_file: /c, key_file: /k}}}}\n",
    )
    assert _problems(_write(tmp_path, text)) == [
        (
            15,
            11,
            "$.hosts[1].name",
            "host h2 serves plain HTTP but h1 serves TLS; the centre federates every host "
            "with one scheme",
        )
    ]


def test_federation_user_must_be_a_host_user(tmp_path: Path) -> None:
    text = BASE.replace("basic_auth: {username: fed,", "basic_auth: {username: nobody,")
    assert _problems(_write(tmp_path, text)) == [
        (
            25,
            30,
            "$.central.prometheus.federation.basic_auth.username",
            "host h1 has no basic-auth user `nobody` (it has fed, ops)",
        )
    ]


def test_hosts_requiring_users_need_the_centre_to_send_one(tmp_path: Path) -> None:
    text = BASE.replace(
        "      basic_auth: {username: fed, password_file: /etc/flobs/secrets/fed.password}\n",
        "",
    )
    assert _problems(_write(tmp_path, text)) == [
        (
            13,
            11,
            "$.hosts[0].name",
            "host h1: its local Prometheus requires basic auth, but the centre's federate "
            "job sends none",
        )
    ]


def test_unreadable_or_non_bcrypt_hash_files(tmp_path: Path) -> None:
    inv = _write(tmp_path)
    (tmp_path / "ops.bcrypt").unlink()
    (tmp_path / "fed.bcrypt").write_text("plain-password\n")
    problems = _problems(inv)
    assert problems == [
        (
            8,
            31,
            "$.defaults.local_prometheus.web.basic_auth_users.fed",
            "fed.bcrypt does not hold a bcrypt hash (the password of `fed`)",
        ),
        (
            8,
            48,
            "$.defaults.local_prometheus.web.basic_auth_users.ops",
            "cannot read the password hash of `ops` from ops.bcrypt: No such file or directory",
        ),
    ]
    # The file's content is never echoed: it may be a password pasted by mistake.
    assert not any("plain-password" in m for *_, m in problems)


def test_users_without_a_self_scrape_credential(tmp_path: Path) -> None:
    text = BASE.replace(
        "      self_scrape: {username: ops, password_file: /etc/flobs/secrets/ops.password}\n",
        "",
    )
    assert [p[2:] for p in _problems(_write(tmp_path, text))] == [
        (
            "$.defaults.local_prometheus.web.basic_auth_users",
            "with basic_auth_users the local Prometheus needs a credential to scrape itself "
            "(job `prometheus`), or its `up` is 0",
        )
    ]


RW = """\
apiVersion: flobs/v1
cluster: t
hosts:
  - {name: h1, address: 10.0.0.1}
central:
  prometheus:
    mode: remote_write
    remote_write: {url: http://store.t/api/v1/write, bearer_token_file: /etc/flobs/token}
    url: https://store.t
  loki:
    url: http://loki.t/loki/api/v1/push
    basic_auth: {username: u, password_file: /p}
  traces: {otlp_endpoint: tempo.t:4317}
  grafana: {url: https://grafana.t}
"""


def test_every_plain_http_credential_is_a_warning(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(RW)
    got = [(p.line, p.col, p.key_path, p.message) for p in _warnings(inv)]
    assert got == [
        (
            8,
            25,
            "$.central.prometheus.remote_write.url",
            "remote_write URL is plain http; its bearer token would cross the network unencrypted",
        ),
        (
            11,
            10,
            "$.central.loki.url",
            "Loki URL is plain http; its basic-auth password would cross the network unencrypted",
        ),
    ]
    # https, or plain http that stays on this machine, is not a warning.
    inv.write_text(
        RW.replace("http://store.t", "https://store.t").replace(
            "http://loki.t", "http://127.0.0.1:3100"
        )
    )
    assert _warnings(inv) == []


def test_federation_basic_auth_over_plain_http_is_a_warning(tmp_path: Path) -> None:
    text = BASE.replace(
        "      tls: {cert_file: /etc/flobs/tls/host.pem, key_file: /etc/flobs/tls/host.key}\n",
        "",
    )
    for key in ("ca_file", "server_name", "cert_file", "key_file"):
        text = "\n".join(line for line in text.splitlines() if f"  {key}: /etc/flobs" not in line)
    text = text.replace("      server_name: flintlock.t\n", "") + "\n"
    got = [(p.key_path, p.message) for p in _warnings(_write(tmp_path, text))]
    assert got == [
        (
            "$.central.prometheus.federation.basic_auth",
            "the federate job sends a basic-auth password over plain http; it would cross "
            "the network unencrypted",
        )
    ]


def test_strict_generate_refuses_warnings_and_writes_nothing(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(RW)
    out = tmp_path / "out"
    r = run_flobs("generate", "-i", inv, "-o", out, "--strict")
    assert r.code == 2, r.stderr
    assert (
        f"{inv}:8:25: $.central.prometheus.remote_write.url: remote_write URL is plain http"
        in r.stderr
    )
    assert "error: 2 warnings in the input, errors with --strict; nothing was written" in r.stderr
    assert not out.exists()
    assert run_flobs("generate", "-i", inv, "-o", out).code == 0


def test_remote_write_mode_keeps_the_local_prometheus_on_loopback(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(RW.replace("http://", "https://"))
    assert str(load_fleet(inv).fleet.hosts[0].vars.local_prometheus.listen) == "127.0.0.1:9091"
    inv.write_text(
        RW.replace("http://", "https://").replace(
            "  - {name: h1, address: 10.0.0.1}",
            "  - {name: h1, address: 10.0.0.1, vars: {local_prometheus: {listen: 0.0.0.0:9099}}}",
        )
    )
    assert str(load_fleet(inv).fleet.hosts[0].vars.local_prometheus.listen) == "0.0.0.0:9099"


def test_validate_checks_the_local_web_config_against_its_schema(
    example_out: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(example_out, out)
    rel = "hosts/fl-eu1-a-01/prometheus-web.yml"
    (out / rel).write_text(
        "tls_server_config: {cert_file: /c, key_file: /k}\nbasic_auth_user: {}\n"
    )
    rehash(out)
    result = validate(out, tools="off")
    assert [(p.file, p.line, p.col, p.check_id, p.message) for p in result.problems] == [
        (
            rel,
            None,  # the schema check places root-level findings at the file
            None,
            "schema",
            "Additional properties are not allowed ('basic_auth_user' was unexpected) "
            "(schema node-exporter-web.schema.json)",
        )
    ]


def test_remote_write_tls_names_the_server(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(
        RW.replace("http://", "https://").replace(
            "bearer_token_file: /etc/flobs/token}",
            "bearer_token_file: /etc/flobs/token, ca_file: /ca.pem, server_name: store.t}",
        )
    )
    out = tmp_path / "out"
    generate(inv, out)
    (rw,) = _yaml(out / "hosts/h1/prometheus.yml")["remote_write"]
    assert rw["tls_config"] == {"ca_file": "/ca.pem", "server_name": "store.t"}
    assert rw["authorization"] == {"type": "Bearer", "credentials_file": "/etc/flobs/token"}


def test_a_host_cannot_take_the_centres_ansible_name(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(RW.replace("http://", "https://").replace("name: h1", "name: flobs-central"))
    assert _problems(inv) == [
        (
            4,
            12,
            "$.hosts[0].name",
            "host name `flobs-central` is the centre's name in deploy/ansible/inventory.yml",
        )
    ]
