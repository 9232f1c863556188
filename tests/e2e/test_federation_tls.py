"""Federation over TLS with basic auth, end to end, with certificates made by openssl.

Every host's local Prometheus serves HTTPS and requires a user; the centre federates
with scheme https, the test CA and a password file. A wrong password or an unknown CA
must make `flobs verify` name the host and the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flobs.live.demo import LiveFleet, demo_inventory, start_fleet, write_inventory
from tests.conftest import require_major, require_tool
from tests.deploy.certs import make_ca, make_server_cert, write_bcrypt
from tests.e2e.fleet import LONG_FLUSH, _major_minor, loopback_block
from tests.helpers import run_flobs

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

USER = "flobs-central"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def tls_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFleet]:
    prometheus = require_major("prometheus", 3)
    require_tool("prometheus-node-exporter")
    require_tool("openssl")
    workdir = tmp_path_factory.mktemp("fleet-tls")
    doc = demo_inventory(
        3,
        workdir,
        first_address=loopback_block(),
        flush_interval=LONG_FLUSH,
        cluster="e2e",
        prometheus_version=_major_minor(prometheus),
    )
    addresses = [h["address"] for h in doc["hosts"]]
    secrets = workdir / "secrets"
    ca = make_ca(secrets / "ca")
    server = make_server_cert(ca, secrets / "hosts", "local-prometheus", addresses)
    password_file = secrets / "federate.password"
    password_file.write_text(PASSWORD + "\n")
    write_bcrypt(secrets / "federate.bcrypt", PASSWORD)
    doc["defaults"]["local_prometheus"]["web"] = {
        "tls": {"cert_file": str(server.cert), "key_file": str(server.key)},
        # relative to the inventory, as documented
        "basic_auth_users": {USER: "secrets/federate.bcrypt"},
        "self_scrape": {"username": USER, "password_file": str(password_file)},
    }
    doc["central"]["prometheus"]["federation"] = {
        "ca_file": str(secrets / "centre-ca.pem"),
        "basic_auth": {"username": USER, "password_file": str(secrets / "centre.password")},
    }
    (secrets / "centre-ca.pem").write_bytes(ca.cert.read_bytes())
    (secrets / "centre.password").write_text(PASSWORD + "\n")
    inventory = workdir / "inventory.yaml"
    write_inventory(doc, inventory)
    live = start_fleet(inventory, workdir, seed=5)
    try:
        report = live.wait_for_hosts(timeout=60)
        assert report.ok, [(h.name, h.state, h.detail) for h in report.hosts]
        yield live
    finally:
        live.stop()


def _verify(live: LiveFleet) -> tuple[int, dict[str, dict[str, str]], str]:
    inventory = live.workdir / "inventory.yaml"
    r = run_flobs("verify", "-i", inventory, "--format", "json")
    hosts = {h["name"]: h for h in json.loads(r.stdout)["hosts"]}
    return r.code, hosts, r.stderr


def _await_failure(live: LiveFleet, seconds: float = 30) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + seconds
    while True:
        code, hosts, stderr = _verify(live)
        if code == 1 and all(h["state"] == "unreachable" for h in hosts.values()):
            return hosts
        assert time.monotonic() < deadline, (code, hosts, stderr)
        time.sleep(1)


def _await_recovery(live: LiveFleet, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        code, hosts, stderr = _verify(live)
        if code == 0:
            return
        assert time.monotonic() < deadline, (code, hosts, stderr)
        time.sleep(1)


def test_generated_transport_matches_on_both_sides(tls_fleet: LiveFleet) -> None:
    out = tls_fleet.out
    central = (out / "central" / "prometheus.yml").read_text()
    assert "scheme: https" in central
    assert "ca_file: " in central and "password_file: " in central
    web = (out / "hosts" / "e2e-1" / "prometheus-web.yml").read_text()
    assert "tls_server_config:" in web and f"{USER}: " in web


def test_centre_sees_every_host_over_tls_with_basic_auth(tls_fleet: LiveFleet) -> None:
    code, hosts, stderr = _verify(tls_fleet)
    assert code == 0, (hosts, stderr)
    assert {name: h["state"] for name, h in hosts.items()} == {
        "e2e-1": "present",
        "e2e-2": "present",
        "e2e-3": "present",
    }
    # Plain http to a TLS listener is refused: the listener really is TLS-only.
    import httpx

    host = tls_fleet.fleet.host("e2e-1")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{host.federation_target}/-/ready", timeout=3).raise_for_status()


def test_wrong_password_and_unknown_ca_name_host_and_reason(tls_fleet: LiveFleet) -> None:
    secrets = tls_fleet.workdir / "secrets"
    # Prometheus reads password_file on every scrape: no reload needed.
    (secrets / "centre.password").write_text("wrong\n")
    try:
        hosts = _await_failure(tls_fleet)
        for name, h in hosts.items():
            assert "401 Unauthorized" in h["detail"], (name, h)
            assert h["detail"].startswith(
                f"the central cannot federate {tls_fleet.fleet.host(name).federation_target}"
            )
    finally:
        (secrets / "centre.password").write_text(PASSWORD + "\n")
    _await_recovery(tls_fleet)
    # A CA the hosts' certificate does not chain to (re-read when the file changes).
    original = (secrets / "centre-ca.pem").read_bytes()
    other = make_ca(tls_fleet.workdir / "other-ca", "someone-else")
    (secrets / "centre-ca.pem").write_bytes(other.cert.read_bytes())
    try:
        hosts = _await_failure(tls_fleet)
        for name, h in hosts.items():
            assert "certificate signed by unknown authority" in h["detail"], (name, h)
    finally:
        (secrets / "centre-ca.pem").write_bytes(original)
    _await_recovery(tls_fleet)


def test_text_report_names_the_host(tls_fleet: LiveFleet, tmp_path: Path) -> None:
    # The people-facing report carries the same reason on the host's line.
    secrets = tls_fleet.workdir / "secrets"
    (secrets / "centre.password").write_text("wrong\n")
    try:
        _await_failure(tls_fleet)
        r = run_flobs("verify", "-i", tls_fleet.workdir / "inventory.yaml")
        assert r.code == 1
        assert any(
            "e2e-2" in line and "401 Unauthorized" in line for line in r.stdout.splitlines()
        ), r.stdout
    finally:
        (secrets / "centre.password").write_text(PASSWORD + "\n")
    _await_recovery(tls_fleet)


def test_deep_reads_each_host_over_tls_with_the_federation_user(tls_fleet: LiveFleet) -> None:
    # --deep reads every local Prometheus itself: https, the federation CA and user,
    # exactly like the centre's federate job (plain http would be refused above).
    # Right after start the centre has not federated every rule's first samples yet.
    deadline = time.monotonic() + 120
    while True:
        r = run_flobs(
            "verify", "-i", tls_fleet.workdir / "inventory.yaml", "--deep", "--format", "json"
        )
        deep = json.loads(r.stdout)["deep"] if r.stdout else r.stderr
        if r.code == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert r.code == 0, r.stdout + r.stderr
    assert [(d["host"], d["error"], d["mismatches"]) for d in deep] == [
        ("e2e-1", "", []),
        ("e2e-2", "", []),
        ("e2e-3", "", []),
    ]
    assert all(d["series"] > 10 for d in deep), deep


def test_deep_without_the_password_file_is_a_usage_error(tls_fleet: LiveFleet) -> None:
    secrets = tls_fleet.workdir / "secrets"
    password = secrets / "centre.password"
    password.rename(secrets / "centre.password.away")
    try:
        r = run_flobs("verify", "-i", tls_fleet.workdir / "inventory.yaml", "--deep")
    finally:
        (secrets / "centre.password.away").rename(password)
    assert (r.code, r.stdout) == (2, "")
    assert r.stderr.splitlines() == [
        "error: verify --deep reaches the hosts as the centre does and cannot read the "
        f"federation password file {password}: No such file or directory",
        "    hint: run it where central.prometheus.federation.basic_auth.password_file is readable",
    ]
    assert PASSWORD not in r.stderr


def test_demo_reads_local_rules_over_tls_with_the_federation_user(tls_fleet: LiveFleet) -> None:
    # The demo asks each local Prometheus for failing rules as the centre reaches it.
    assert tls_fleet.local_rule_failures() == []
