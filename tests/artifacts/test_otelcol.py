"""otelcol.yaml: processors in order, loopback listeners, secrets by reference, `$` escaping."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flobs import yamlio
from flobs.artifacts import alloy, otelcol, promtail
from flobs.errors import InputError
from flobs.model import Fleet
from tests.artifacts.test_promtail import HOSTILE, example_doc, example_fleet, fleet_of, hostile_doc

# What the collector's config resolver does with a string: ${env:X}/${file:X}/${X}
# are expanded, `$$` is a literal `$` (otelcol confmap, "escaping $").
_EXPANSION = re.compile(r"\$\$|\$\{[^}]*\}|\$")


def collector_view(value: Any) -> Any:
    """A string as the collector sees it; expansions are kept as ('expand', ref) markers."""
    if isinstance(value, dict):
        return {collector_view(k): collector_view(v) for k, v in value.items()}
    if isinstance(value, list):
        return [collector_view(v) for v in value]
    if not isinstance(value, str):
        return value
    refs: list[str] = []

    def one(m: re.Match[str]) -> str:
        if m.group() == "$$":
            return "$"
        refs.append(m.group())
        return m.group()

    text = _EXPANSION.sub(one, value)
    return ("expand", text) if refs else text


def otel_doc(fleet: Fleet, index: int = 0) -> dict[str, Any]:
    (data,) = otelcol.host_files(fleet, fleet.hosts[index]).values()
    loaded: dict[str, Any] = yamlio.load(data.decode())
    return loaded


def test_processor_order_and_sampling() -> None:
    fleet = example_fleet()
    plain = otel_doc(fleet, 0)
    assert plain["service"]["pipelines"] == {
        "traces": {
            "receivers": ["otlp"],
            "processors": ["memory_limiter", "resource", "batch"],
            "exporters": ["otlp"],
        }
    }
    assert "probabilistic_sampler" not in plain["processors"]
    sampled = otel_doc(fleet, 5)  # fl-eu1-b-03 sets sampling_percentage: 25
    assert sampled["service"]["pipelines"]["traces"]["processors"] == [
        "memory_limiter",
        "resource",
        "probabilistic_sampler",
        "batch",
    ]
    assert sampled["processors"]["probabilistic_sampler"] == {"sampling_percentage": 25}
    assert plain["processors"]["memory_limiter"] == {
        "check_interval": "1s",
        "limit_mib": 512,
        "spike_limit_mib": 128,
    }


def test_resource_attributes_name_the_host_cluster_and_labels() -> None:
    attrs = otel_doc(example_fleet(), 2)["processors"]["resource"]["attributes"]
    assert {a["key"]: a["value"] for a in attrs} == {
        "host.name": "fl-eu1-a-03",
        "flintlock.cluster": "eu1",
        "provider": "cloud-hypervisor",
        "rack": "r02",
        "region": "eu-west-1",
        "zone": "a",
    }
    assert {a["action"] for a in attrs} == {"upsert"}


def test_listeners_follow_the_inventory_and_default_to_loopback() -> None:
    doc = otel_doc(example_fleet())
    assert doc["receivers"]["otlp"]["protocols"] == {
        "grpc": {"endpoint": "127.0.0.1:4317"},
        "http": {"endpoint": "127.0.0.1:4318"},
    }
    assert doc["extensions"]["health_check"] == {"endpoint": "127.0.0.1:13133"}
    assert doc["service"]["telemetry"]["metrics"]["readers"] == [
        {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": 8888}}}}
    ]
    inv = example_doc()
    inv["defaults"]["otelcol"] = {
        "grpc_endpoint": "[::1]:14317",
        "metrics_endpoint": "127.0.0.5:18888",
    }
    changed = otel_doc(fleet_of(inv))
    assert changed["receivers"]["otlp"]["protocols"]["grpc"] == {"endpoint": "[::1]:14317"}
    assert changed["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"][
        "prometheus"
    ] == {"host": "127.0.0.5", "port": 18888}


def test_exporter_tls_is_verified_unless_insecure_is_asked_for() -> None:
    doc = otel_doc(example_fleet())
    exporter = doc["exporters"]["otlp"]
    assert exporter["endpoint"] == "tempo.example.internal:4317"
    assert exporter["tls"] == {"insecure": False}
    assert "headers" not in exporter
    assert "auth" not in exporter
    inv = example_doc()
    inv["central"]["traces"].update({"insecure": True, "ca_file": "/ca.pem"})
    insecure = otel_doc(fleet_of(inv))["exporters"]["otlp"]
    assert insecure["tls"] == {"insecure": True}  # a CA means nothing in plaintext
    inv["central"]["traces"].update({"insecure": False})
    assert otel_doc(fleet_of(inv))["exporters"]["otlp"]["tls"] == {
        "insecure": False,
        "ca_file": "/ca.pem",
    }


def test_secrets_are_env_references_and_files_never_values() -> None:
    inv = example_doc()
    inv["central"]["traces"].update(
        {
            "headers_from_env": {"X-Scope-OrgID": "TEMPO_TENANT", "Authorization": "TEMPO_AUTH"},
            "bearer_token_file": "/etc/flobs/tempo-token",
        }
    )
    doc = otel_doc(fleet_of(inv))
    exporter = doc["exporters"]["otlp"]
    assert exporter["headers"] == {
        "Authorization": "${env:TEMPO_AUTH}",
        "X-Scope-OrgID": "${env:TEMPO_TENANT}",
    }
    assert exporter["auth"] == {"authenticator": "bearertokenauth/central"}
    assert doc["extensions"]["bearertokenauth/central"] == {"filename": "/etc/flobs/tempo-token"}
    assert doc["service"]["extensions"] == ["health_check", "bearertokenauth/central"]
    inv["central"]["traces"].pop("bearer_token_file")
    inv["central"]["traces"]["basic_auth"] = {"username": "fl", "password_file": "/etc/pw"}
    basic = otel_doc(fleet_of(inv))
    assert basic["extensions"]["basicauth/central"] == {
        "client_auth": {"username": "fl", "password": "${file:/etc/pw}"}
    }


def test_password_file_that_cannot_be_referenced_is_refused_by_the_inventory() -> None:
    # Refused where it enters, with its key path, not while rendering (no position).
    inv = example_doc()
    inv["central"]["traces"]["basic_auth"] = {"username": "fl", "password_file": "/etc/p}w"}
    with pytest.raises(InputError) as err:
        fleet_of(inv)
    (problem,) = err.value.problems
    assert problem.key_path == "$.central.traces.basic_auth.password_file"
    assert problem.line is not None
    with pytest.raises(ValueError, match="cannot be a"):
        otelcol.file_ref("/etc/p}w")


@pytest.mark.parametrize(
    ("source", "receiver", "parse_from"),
    [("journal", "journald", "body.MESSAGE"), ("file", "filelog", "body")],
)
def test_optional_logs_pipeline(source: str, receiver: str, parse_from: str) -> None:
    inv = example_doc()
    for h in inv["hosts"]:
        h.pop("vars", None)
    inv["defaults"]["logs"].update({"source": source, "positions_dir": "/data/logs"})
    inv["defaults"]["otelcol"] = {"logs_pipeline": True, "sampling_percentage": 10}
    doc = otel_doc(fleet_of(inv))
    assert doc["service"]["pipelines"]["logs"] == {
        "receivers": ["otlp", receiver],
        "processors": ["memory_limiter", "resource", "batch"],  # logs are never sampled
        "exporters": ["otlp"],
    }
    rec = doc["receivers"][receiver]
    assert rec["storage"] == "file_storage"
    assert doc["extensions"]["file_storage"]["directory"] == "/data/logs/otelcol"
    assert "file_storage" in doc["service"]["extensions"]
    (op,) = rec["operators"]
    assert op["parse_from"] == parse_from
    assert op["on_error"] == "send_quiet"
    assert op["timestamp"]["layout"] == "2006-01-02T15:04:05Z07:00"
    if source == "journal":
        assert rec["units"] == ["flintlockd.service"]
    else:
        assert rec["include"] == ["/var/log/flintlockd/flintlockd.log"]


def test_hostile_values_round_trip_and_dollars_never_expand() -> None:
    fleet = fleet_of(hostile_doc())
    doc = otel_doc(fleet, 0)
    seen = collector_view(doc)
    attrs = {a["key"]: a["value"] for a in seen["processors"]["resource"]["attributes"]}
    assert attrs["flintlock.cluster"] == HOSTILE
    assert attrs["rack"] == HOSTILE
    assert attrs["note"] == "{{ template }}"
    assert seen["extensions"]["bearertokenauth/central"]["filename"] == "/etc/flobs/tok $x {{ y }}"
    assert seen["exporters"]["otlp"]["tls"]["ca_file"] == "/etc/ssl/$HOME/ca.pem"
    # The only expansions the collector performs are the ones we mean.
    expansions = []

    def walk(v: Any) -> None:
        if isinstance(v, tuple):
            expansions.append(v[1])
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(seen)
    assert sorted(expansions) == ["${env:TEMPO_AUTH}", "${env:TEMPO_TENANT}"]
    # The raw file text parsed by both YAML back ends is the same document.
    (data,) = otelcol.host_files(fleet, fleet.hosts[0]).values()
    ruamel, _ = yamlio.load_with_positions(data.decode(), backend="ruamel")
    assert ruamel == doc


def test_disabled_collector_writes_nothing() -> None:
    inv = example_doc()
    inv["defaults"]["otelcol"] = {"enabled": False}
    fleet = fleet_of(inv)
    assert otelcol.host_files(fleet, fleet.hosts[0]) == {}


@settings(max_examples=200, deadline=None)
@given(value=st.text(), cluster=st.text(min_size=1))
def test_any_label_value_and_cluster_round_trip(value: str, cluster: str) -> None:
    """Property: whatever the text, every generated file gives it back unchanged."""
    fleet = example_fleet()
    host = dataclasses.replace(fleet.hosts[0], labels=(("rack", value),))
    fleet = dataclasses.replace(fleet, cluster=cluster, hosts=(host,))
    otel = collector_view(otel_doc(fleet))
    attrs = {a["key"]: a["value"] for a in otel["processors"]["resource"]["attributes"]}
    assert attrs["rack"] == value
    assert attrs["flintlock.cluster"] == cluster
    (data,) = promtail.host_files(fleet, host).values()
    labels = yamlio.load(data.decode())["clients"][0]["external_labels"]
    assert labels == {"cluster": cluster, "host": host.name, "rack": value}
    blocks = alloy.parse(alloy.render(fleet, host))
    (write,) = [b for b in blocks if b.name == "loki.write"]
    assert write.attrs["external_labels"] == labels
