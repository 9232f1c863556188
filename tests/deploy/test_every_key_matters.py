"""No inventory key is accepted and then ignored.

The test walks schemas/inventory.schema.json: for every leaf key it sets a value other
than the default (derived from the schema, or given below) and proves that the
generated tree changes. Keys that only decide what is accepted (``allow_public``) must
turn a rejected inventory into an accepted one instead. A key added to the schema
without a way to show its effect fails here: give it an entry in EXPLICIT.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.errors import InputError
from flobs.generate import render_tree
from flobs.inventory import load_fleet
from tests.conftest import REPO
from tests.deploy.certs import write_bcrypt
from tests.helpers import MINIMAL_INVENTORY

SCHEMA = json.loads((REPO / "schemas" / "inventory.schema.json").read_text())
BASE = MINIMAL_INVENTORY
Setting = dict[str, Any]  # dotted key path ("vars.…" or "central.…") → value

RW = {
    "central.prometheus.mode": "remote_write",
    "central.prometheus.remote_write.url": "https://s.c/w",
}
TLS_HOSTS = {
    "vars.local_prometheus.web.tls.cert_file": "/c.pem",
    "vars.local_prometheus.web.tls.key_file": "/c.key",
}
USERS = {
    "vars.local_prometheus.web.basic_auth_users": {"u": "u.bcrypt", "v": "v.bcrypt"},
    "vars.local_prometheus.web.self_scrape.username": "u",
    "vars.local_prometheus.web.self_scrape.password_file": "/u.pw",
    "central.prometheus.federation.basic_auth.username": "u",
    "central.prometheus.federation.basic_auth.password_file": "/u.pw",
}


def _auth(prefix: str, context: Setting | None = None) -> dict[str, tuple[Any, Setting]]:
    """The shared client-auth keys of a section (value, context)."""
    ctx = context or {}
    basic = {f"{prefix}.basic_auth.username": "a", f"{prefix}.basic_auth.password_file": "/a"}
    return {
        f"{prefix}.bearer_token_file": ("/token", ctx),
        f"{prefix}.basic_auth.username": ("b", {**ctx, **basic}),
        f"{prefix}.basic_auth.password_file": ("/b", {**ctx, **basic}),
        f"{prefix}.ca_file": ("/ca.pem", ctx),
        f"{prefix}.cert_file": ("/cl.pem", ctx),
        f"{prefix}.key_file": ("/cl.key", ctx),
    }


# A generated Alertmanager (receivers set): its keys shape central/alertmanager.yml.
AM_GEN: Setting = {
    "central.alertmanager.receivers": [{"name": "oncall", "webhook": [{"url": "https://hook.c/a"}]}]
}
AM_TWO: Setting = {
    "central.alertmanager.receivers": [
        {"name": "oncall", "webhook": [{"url": "https://hook.c/a"}]},
        {"name": "team", "webhook": [{"url": "https://hook.c/b"}]},
    ]
}
AM_URLS: Setting = {"central.alertmanager.urls": ["https://am.c:9093"]}
NE_TLS = {"vars.node_exporter.tls.cert_file": "/n.pem", "vars.node_exporter.tls.key_file": "/n.key"}
# Keys whose other value cannot be derived from the schema, or that only matter together
# with other settings (the context, set on both sides of the comparison).
EXPLICIT: dict[str, tuple[Any, Setting]] = {
    "vars.providers": (["cloud-hypervisor"], {}),
    "vars.containerd.metrics_endpoint": ("127.0.0.1:1338", {}),
    "vars.node_exporter.tls.cert_file": ("/n2.pem", NE_TLS),
    "vars.node_exporter.tls.key_file": ("/n2.key", NE_TLS),
    "vars.node_exporter.tls.ca_file": ("/ca.pem", NE_TLS),
    "vars.node_exporter.tls.server_name": ("ne.c", NE_TLS),
    "vars.local_prometheus.version": ("2.42", {}),
    "vars.local_prometheus.web.tls.cert_file": ("/d.pem", TLS_HOSTS),
    "vars.local_prometheus.web.tls.key_file": ("/d.key", TLS_HOSTS),
    "vars.local_prometheus.web.tls.client_ca_file": ("/ca.pem", TLS_HOSTS),
    "vars.local_prometheus.web.basic_auth_users": (
        {"u": "u.bcrypt"},
        USERS,
    ),
    "vars.local_prometheus.web.self_scrape.username": ("v", USERS),
    "vars.local_prometheus.web.self_scrape.password_file": ("/v.pw", USERS),
    "vars.logs.path": ("/var/log/other.log", {"vars.logs.source": "file"}),
    "vars.otelcol.sampling_percentage": (50, {}),
    "vars.extra_scrape_jobs": (
        {"mine": {"scrape": {"static_configs": [{"targets": ["127.0.0.1:9999"]}]}}},
        {},
    ),
    "central.prometheus.url": ("https://prom2.c:9090", {}),
    "central.prometheus.version": ("2.42", {}),
    "central.prometheus.mode": (
        "remote_write",
        {"central.prometheus.remote_write.url": "https://s.c/w"},
    ),
    "central.prometheus.remote_write.url": ("https://s2.c/w", RW),
    **_auth("central.prometheus.remote_write", RW),
    "central.prometheus.remote_write.insecure_skip_verify": (True, RW),
    "central.prometheus.remote_write.server_name": ("store.c", RW),
    "central.prometheus.remote_write.queue.max_samples_per_send": (2001, RW),
    "central.prometheus.remote_write.queue.capacity": (10001, RW),
    "central.prometheus.remote_write.queue.max_shards": (51, RW),
    "central.prometheus.extra_match": (["node_load1"], {}),
    "central.prometheus.federation.ca_file": ("/ca.pem", TLS_HOSTS),
    "central.prometheus.federation.server_name": ("h.c", TLS_HOSTS),
    "central.prometheus.federation.cert_file": ("/f.pem", TLS_HOSTS),
    "central.prometheus.federation.key_file": ("/f.key", TLS_HOSTS),
    "central.prometheus.federation.basic_auth.username": ("v", USERS),
    "central.prometheus.federation.basic_auth.password_file": ("/v.pw", USERS),
    # central.logs replaces central.loki (_inventory drops central.loki for these).
    "central.logs.backend": ("victorialogs", {"central.logs.url": "https://vl.c"}),
    "central.logs.url": ("https://loki3.c/loki/api/v1/push", {}),
    "central.logs.query_url": ("https://lq3.c", {"central.logs.url": "https://l.c/x"}),
    "central.logs.tenant": ("t2", {"central.logs.url": "https://l.c/x"}),
    **_auth("central.logs", {"central.logs.url": "https://l.c/x"}),
    "central.logs.insecure_skip_verify": (True, {"central.logs.url": "https://l.c/x"}),
    "vars.otelcol.version": ("0.160.0", {}),
    "central.loki.url": ("https://loki2.c/loki/api/v1/push", {}),
    "central.loki.query_url": ("https://lq.c", {}),
    "central.loki.tenant": ("t1", {}),
    **_auth("central.loki"),
    "central.traces.otlp_endpoint": ("tempo2.c:4317", {}),
    **_auth("central.traces"),
    "central.traces.headers_from_env": ({"X-Scope-OrgID": "TENANT"}, {}),
    "central.traces.query_url": ("https://tq.c", {}),
    "central.grafana.datasources.prometheus.url": ("https://p.c", {}),
    "central.grafana.datasources.loki.url": ("https://l.c", {}),
    "central.grafana.datasources.tempo.url": ("https://t.c", {}),
    "central.verify.listen": ("127.0.0.1:9466", {"central.verify.enabled": True}),
    "central.verify.failing_for": ("9m", {"central.verify.enabled": True}),
    "central.alerts.vmm_panic_for": ("1m", {}),  # the default 0m has nothing below it
    "central.alerts.grpc_error_ratio": (0.1, {}),
    "central.alerts.cluster_down_ratio": (0.3, {}),
    "central.alerts.filesystem_free_ratio": (0.2, {}),
    "central.alerts.inodes_free_ratio": (0.2, {}),
    "central.alerts.memory_available_ratio": (0.1, {}),
    "central.alerts.clock_offset_seconds": (0.1, {}),
    "central.alerts.federation_slow_ratio": (0.5, {}),
    # FlobsRemoteWriteBehind exists in remote_write mode only.
    "central.alerts.remote_write_behind_seconds": (121, RW),
    "central.alerts.remote_write_behind_for": ("14m", RW),
    "central.alertmanager.urls": (["https://am2.c:9093"], {}),
    "central.alertmanager.listen": ("127.0.0.1:19093", AM_GEN),
    "central.alertmanager.url": ("https://am.c:9093", AM_GEN),
    **_auth("central.alertmanager", AM_URLS),
    "central.alertmanager.insecure_skip_verify": (True, AM_URLS),
    "central.alertmanager.group_by": (["alertname", "host"], AM_GEN),
    "central.alertmanager.group_wait": ("10s", AM_GEN),
    "central.alertmanager.group_interval": ("2m", AM_GEN),
    "central.alertmanager.repeat_interval": ("1h", AM_GEN),
    "central.alertmanager.resolve_timeout": ("2m", AM_GEN),
    "central.alertmanager.receivers": (AM_GEN["central.alertmanager.receivers"], {}),
    "central.alertmanager.default_receiver": ("team", AM_TWO),
    "central.alertmanager.routes": (
        [{"receiver": "team", "match": {"severity": "critical"}}],
        AM_TWO,
    ),
    "central.alertmanager.inhibit": (False, AM_GEN),
    "central.alertmanager.vmalert_listen": ("127.0.0.1:18880", {**AM_GEN, **RW}),
    # Gossip (the Alertmanager drop-in's flags) is on only with peers.
    "central.alertmanager.cluster.peers": (["am2.c:9094"], AM_GEN),
    "central.alertmanager.cluster.listen": (
        "10.0.0.9:9094",
        {**AM_GEN, "central.alertmanager.cluster.peers": ["am2.c:9094"]},
    ),
}
# Keys that decide only what is accepted: with the context alone the inventory is
# rejected, with the key too it is accepted.
GATES: dict[str, Setting] = {
    "vars.node_exporter.allow_public": {"vars.node_exporter.endpoint": "0.0.0.0:9100"},
    "vars.process_exporter.allow_public": {"vars.process_exporter.endpoint": "0.0.0.0:9256"},
    "vars.logs.allow_public": {"vars.logs.listen": "0.0.0.0:9080"},
    "vars.otelcol.allow_public": {"vars.otelcol.grpc_endpoint": "0.0.0.0:4317"},
    # Without central.loki every shipper would push to its own loopback: an error,
    # unless the inventory says everything runs on one machine.
    "central.single_host": {"central.loki": "DROP"},
    # A webhook's url_file needs Alertmanager 0.26: refused at the default 0.25.
    "central.alertmanager.version": {
        "central.alertmanager.receivers": [{"name": "o", "webhook": [{"url_file": "/hook.url"}]}]
    },
}
# The accepting value of a gate that is not a boolean switch.
GATE_VALUES: dict[str, Any] = {"central.alertmanager.version": "0.26"}
# Keys whose value is checked against the rest of the host (port collisions): a clash
# with node_exporter's port is rejected, which proves the key is read.
REJECTS: dict[str, Any] = {
    "vars.flintlockd.grpc_endpoint": "127.0.0.1:9100",
    "vars.flintlockd.http_endpoint": "127.0.0.1:9100",
}
# Keys read by a command rather than written into a file.
USED_BY_COMMANDS = {
    "central.grafana.url": "`flobs push` talks to this Grafana",
}


def _leaves(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if node.get("$ref", "").endswith("/vars"):
        node = SCHEMA["$defs"]["vars"]
    props = node.get("properties")
    if node.get("type") == "object" and props and "default" not in node:
        for key, sub in props.items():
            yield from _leaves(sub, f"{path}.{key}")
    else:
        yield path, node


LEAVES = dict(
    [
        *_leaves(SCHEMA["$defs"]["vars"], "vars"),
        *_leaves(SCHEMA["properties"]["central"], "central"),
    ]
)


def _derived(path: str, node: dict[str, Any], port: int) -> Any:
    """Another valid value than the default, from the schema alone (or None)."""
    if "default" not in node:
        return None
    default = node["default"]
    refs = {node.get("$ref", "")} | {a.get("$ref", "") for a in node.get("anyOf", [])}
    if isinstance(default, bool):
        return not default
    if "enum" in node:
        return next(v for v in node["enum"] if v != default)
    if isinstance(default, int):
        return default + 1
    if "#/$defs/endpoint" in refs and isinstance(default, str):
        return default.rsplit(":", 1)[0] + f":{port}"
    if "#/$defs/duration" in refs or "#/$defs/alert_duration" in refs:
        m = re.fullmatch(r"([0-9]+)([a-z]+)", default)
        assert m, (path, default)
        return f"{int(m[1]) - 1}{m[2]}"
    if isinstance(default, str):
        return default + "x"
    return None


def _inventory(settings: Setting) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    if any(k.startswith("central.logs.") for k in settings):
        doc["central"].pop("loki", None)  # one of central.logs / central.loki
    for dotted, value in settings.items():
        parts = dotted.split(".")
        node = doc.setdefault("defaults", {}) if parts[0] == "vars" else doc["central"]
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
        if value == "DROP":
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return doc


def _tree(tmp_path: Path, settings: Setting) -> dict[str, bytes]:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yamlio.dump(_inventory(settings)))
    tree = render_tree(load_fleet(inv).fleet)
    return {path: data for path, data in tree.items()}


@pytest.fixture(scope="module")
def hashes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    write_bcrypt(d / "u.bcrypt", "u")
    write_bcrypt(d / "v.bcrypt", "v")
    return d


def test_every_schema_key_is_covered() -> None:
    covered = set(EXPLICIT) | set(GATES) | set(USED_BY_COMMANDS) | set(REJECTS)
    uncovered = [
        path
        for path, node in LEAVES.items()
        if path not in covered and _derived(path, node, 20000) is None
    ]
    assert uncovered == [], "give these keys an EXPLICIT value in this test"
    assert covered <= set(LEAVES), covered - set(LEAVES)


@pytest.mark.parametrize(
    "path", sorted(set(LEAVES) - set(GATES) - set(USED_BY_COMMANDS) - set(REJECTS))
)
def test_key_changes_the_output(path: str, hashes: Path) -> None:
    if path in EXPLICIT:
        value, context = EXPLICIT[path]
    else:
        port = 20000 + sorted(LEAVES).index(path)
        value, context = _derived(path, LEAVES[path], port), {}
    base = _tree(hashes, context)
    changed = _tree(hashes, {**context, path: value})
    assert base != changed, f"{path}: {value!r} is accepted but changes no generated file"


@pytest.mark.parametrize("path", sorted(GATES))
def test_gate_key_changes_what_is_accepted(path: str, hashes: Path) -> None:
    with pytest.raises(InputError):
        _tree(hashes, GATES[path])
    _tree(hashes, {**GATES[path], path: GATE_VALUES.get(path, True)})


@pytest.mark.parametrize("path", sorted(REJECTS))
def test_checked_key_can_be_rejected(path: str, hashes: Path) -> None:
    _tree(hashes, {})
    with pytest.raises(InputError) as err:
        _tree(hashes, {path: REJECTS[path]})
    assert [p.message for p in err.value.problems] == [
        f"host h1: node_exporter.endpoint (127.0.0.1:9100) uses port 9100, already taken by "
        f"{path.removeprefix('vars.')} (127.0.0.1:9100) "
        "(built-in default of vars.node_exporter.endpoint)"
    ]
