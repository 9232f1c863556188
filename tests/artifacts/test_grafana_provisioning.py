"""Grafana provisioning files: uids, correlations, `$` escaping, secrets by reference only."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flobs import yamlio
from flobs.artifacts import dashboards, grafana_provisioning
from flobs.inventory import load_fleet
from flobs.model import Fleet
from tests.conftest import EXAMPLE_INVENTORY

# ${FLOBS_…} secret references: the only un-doubled `$` a provisioning file may hold.
SECRET_REF = re.compile(r"\$\{FLOBS_[A-Z0-9_]+\}")


def fleet_from(tmp_path: Path, central: dict[str, Any] | None = None) -> Fleet:
    doc = copy.deepcopy(yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8")))
    for key, value in (central or {}).items():
        section = doc["central"].setdefault(key, {})
        for name, item in value.items():
            if item is None:
                section.pop(name, None)
            else:
                section[name] = item
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    return load_fleet(path).fleet


def files(fleet: Fleet) -> tuple[dict[str, Any], dict[str, Any], str]:
    out = grafana_provisioning.fleet_files(fleet)
    ds_text = out[grafana_provisioning.DATASOURCES_FILE].decode()
    providers = yaml.safe_load(out[grafana_provisioning.DASHBOARDS_FILE])
    return yaml.safe_load(ds_text), providers, ds_text


def grafana_interpolate(value: Any, env: dict[str, str]) -> Any:
    """What Grafana's provisioning does to every string: `$$` → `$`, `${X}`/`$X` → env."""
    if isinstance(value, dict):
        return {k: grafana_interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [grafana_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value
    expand = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z0-9_]+))")
    return "$".join(
        expand.sub(lambda m: env.get(m.group(1) or m.group(2), ""), part)
        for part in value.split("$$")
    )


def by_type(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["type"]: d for d in doc["datasources"]}


def test_example_datasources_and_correlations(tmp_path: Path) -> None:
    fleet = load_fleet(EXAMPLE_INVENTORY).fleet
    doc, _, _ = files(fleet)
    assert doc["apiVersion"] == 1
    ds = by_type(doc)
    assert list(ds) == ["prometheus", "loki", "tempo"]
    g = fleet.central.grafana
    assert [d["uid"] for d in doc["datasources"]] == [g.prometheus.uid, g.logs.uid, g.traces.uid]
    assert ds["prometheus"]["url"] == "http://prometheus.eu1.example.internal:9090"
    assert ds["prometheus"]["isDefault"] is True
    assert sum(bool(d.get("isDefault")) for d in doc["datasources"]) == 1
    assert ds["loki"]["url"] == "https://loki.example.internal"  # query URL, not /push
    assert ds["tempo"]["url"] == "http://tempo.example.internal:3200"
    # Prometheus exemplars → Tempo
    assert ds["prometheus"]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"datasourceUid": g.traces.uid, "name": "trace_id"}
    ]
    # Loki trace_id → Tempo, as structured metadata and inside the JSON line
    fields = ds["loki"]["jsonData"]["derivedFields"]
    assert {f["datasourceUid"] for f in fields} == {g.traces.uid}
    assert {(f["matcherType"], f["matcherRegex"]) for f in fields} == {
        ("label", "trace_id"),
        ("regex", '"trace_id":"(\\w+)"'),
    }
    line = '{"level":"info","msg":"created","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}'
    regex = next(f["matcherRegex"] for f in fields if f["matcherType"] == "regex")
    assert re.search(regex, line).group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"  # type: ignore[union-attr]
    assert all(f["url"] == "$${__value.raw}" for f in fields)
    # Tempo traces → Loki logs and → Prometheus metrics
    t2l = ds["tempo"]["jsonData"]["tracesToLogsV2"]
    assert t2l["datasourceUid"] == g.logs.uid
    assert t2l["filterByTraceID"] is True
    assert {(t["key"], t["value"]) for t in t2l["tags"]} == {
        ("host.name", "host"),
        ("flintlock.cluster", "cluster"),
    }
    assert ds["tempo"]["jsonData"]["tracesToMetrics"]["datasourceUid"] == g.prometheus.uid
    # No service map: no flobs Prometheus has Tempo's traces_service_graph_* series.
    assert "serviceMap" not in ds["tempo"]["jsonData"]


def test_example_tenant_and_token_by_reference(tmp_path: Path) -> None:
    fleet = load_fleet(EXAMPLE_INVENTORY).fleet
    doc, _, text = files(fleet)
    loki = by_type(doc)["loki"]
    headers = {
        loki["jsonData"][f"httpHeaderName{n}"]: loki["secureJsonData"][f"httpHeaderValue{n}"]
        for n in (1, 2)
    }
    assert headers == {
        "X-Scope-OrgID": "flintlock-eu1",
        "Authorization": "Bearer ${FLOBS_LOKI_TOKEN}",
    }
    # The agents' token file is a path on the hosts; Grafana gets an env reference.
    assert "/etc/flobs/secrets/loki-token" not in text


def test_dollar_signs_are_escaped_and_survive_grafana(tmp_path: Path) -> None:
    fleet = fleet_from(
        tmp_path,
        {
            "loki": {
                "tenant": "team$HOME",
                "basic_auth": {"username": "u$er", "password_file": "/etc/p"},
                "ca_file": "/etc/ca.pem",
            },
            "grafana": {
                "folder": "Flint$lock ${X}",
                "dashboards_path": "/srv/$dash",
                "datasources": {
                    "prometheus": {"name": "prom $PATH", "url": "https://p.example/$x"}
                },
            },
        },
    )
    doc, providers, text = files(fleet)
    single = text.replace("$$", "")
    for m in re.finditer(r"\$", single):
        assert SECRET_REF.match(single, m.start()), single[m.start() : m.start() + 30]
    env = {
        "HOME": "/root",
        "PATH": "/bin",
        "X": "boom",
        "FLOBS_LOKI_PASSWORD": "pw",
        "FLOBS_LOKI_CA_CERT": "PEM",
        "FLOBS_LOKI_TOKEN": "tok",
    }
    seen = grafana_interpolate(doc, env)
    ds = by_type(seen)
    assert ds["prometheus"]["name"] == "prom $PATH"
    assert ds["prometheus"]["url"] == "https://p.example/$x"
    assert ds["loki"]["basicAuthUser"] == "u$er"
    assert ds["loki"]["secureJsonData"] == {
        "httpHeaderValue1": "team$HOME",
        "httpHeaderValue2": "Bearer tok",
        "basicAuthPassword": "pw",
        "tlsCACert": "PEM",
    }
    assert ds["loki"]["jsonData"]["tlsAuthWithCACert"] is True
    assert ds["loki"]["jsonData"]["derivedFields"][0]["url"] == "${__value.raw}"
    query = ds["tempo"]["jsonData"]["tracesToMetrics"]["queries"][0]["query"]
    assert "rate5m{$__tags})" in query
    provider = grafana_interpolate(providers, env)["providers"][0]
    assert provider["folder"] == "Flint$lock ${X}"
    assert provider["options"]["path"] == "/srv/$dash"


def test_secure_json_data_holds_only_references(tmp_path: Path) -> None:
    fleet = fleet_from(
        tmp_path,
        {
            "loki": {
                "bearer_token_file": "/run/secrets/loki",
                "basic_auth": {"username": "grafana", "password_file": "/run/secrets/pw"},
                "cert_file": "/etc/c.pem",
                "key_file": "/etc/k.pem",
                "tenant": None,
            }
        },
    )
    doc, _, text = files(fleet)
    secure = by_type(doc)["loki"]["secureJsonData"]
    assert secure == {
        "httpHeaderValue1": "Bearer ${FLOBS_LOKI_TOKEN}",
        "basicAuthPassword": "${FLOBS_LOKI_PASSWORD}",
        "tlsClientCert": "${FLOBS_LOKI_CLIENT_CERT}",
        "tlsClientKey": "${FLOBS_LOKI_CLIENT_KEY}",
    }
    for path in ("/run/secrets/loki", "/run/secrets/pw", "/etc/c.pem", "/etc/k.pem"):
        assert path not in text
    assert by_type(doc)["loki"]["jsonData"]["httpHeaderName1"] == "Authorization"
    assert "secureJsonData" not in by_type(doc)["prometheus"]
    assert "secureJsonData" not in by_type(doc)["tempo"]


@pytest.mark.parametrize("skip", [False, True])
def test_tls_verification_off_only_when_asked(tmp_path: Path, skip: bool) -> None:
    fleet = fleet_from(tmp_path, {"loki": {"insecure_skip_verify": skip}})
    doc, _, _ = files(fleet)
    for ds in doc["datasources"]:
        want = skip and ds["type"] == "loki"
        assert ds["jsonData"].get("tlsSkipVerify", False) is want


def test_dashboard_provider(tmp_path: Path) -> None:
    fleet = fleet_from(
        tmp_path,
        {
            "grafana": {
                "folder": "Fleet eu1",
                "folder_uid": "fl-eu1",
                "dashboards_path": "/opt/grafana/flobs",
            }
        },
    )
    _, providers, _ = files(fleet)
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Fleet eu1"
    assert provider["folderUid"] == "fl-eu1"
    assert provider["options"]["path"] == "/opt/grafana/flobs"
    assert provider["allowUiUpdates"] is False
    default = files(load_fleet(EXAMPLE_INVENTORY).fleet)[1]["providers"][0]
    assert default["options"]["path"] == "/var/lib/grafana/dashboards/flobs"
    assert default["folder"] == "Flintlock"


def test_dashboard_datasources_are_the_provisioned_ones(tmp_path: Path) -> None:
    fleet = fleet_from(
        tmp_path, {"grafana": {"datasources": {"loki": {"uid": "l2"}, "tempo": {"uid": "t2"}}}}
    )
    provisioned = {d["uid"] for d in files(fleet)[0]["datasources"]}
    used: set[str] = set()
    for data in dashboards.fleet_files(fleet).values():
        text = data.decode()
        uids = set(re.findall(r'"uid": "([^"]+)"', text)) - {json.loads(text)["uid"]}
        assert uids <= provisioned | {"${datasource}"}, uids
        used |= uids
    assert {"l2", "t2", "${datasource}"} <= used


def test_yaml_reads_back_the_same_with_both_parsers(tmp_path: Path) -> None:
    out = grafana_provisioning.fleet_files(load_fleet(EXAMPLE_INVENTORY).fleet)
    for data in out.values():
        assert yamlio.load(data.decode()) == yaml.safe_load(data)
