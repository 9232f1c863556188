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
    (data,) = otelcol.host_files(fleet.host_scope, fleet.hosts[index]).values()
    loaded: dict[str, Any] = yamlio.load(data.decode())
    return loaded


def test_processor_order_and_sampling() -> None:
    fleet = example_fleet()
    plain = otel_doc(fleet, 0)
    assert plain["service"]["pipelines"] == {
        "traces": {
            "receivers": ["otlp"],
            "processors": ["memory_limiter", "resource", "batch"],
            "exporters": ["otlp_grpc/traces", "span_metrics"],
        },
        "metrics/spanmetrics": {
            "receivers": ["span_metrics"],
            "processors": ["memory_limiter"],
            "exporters": ["prometheus/spanmetrics"],
        },
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


@pytest.mark.parametrize(
    ("version", "grpc", "http", "batch_processor"),
    [
        # Before v0.144 only the old names exist (Jaeger 1.76 embeds collector v0.140).
        ("0.140.0", "otlp", "otlphttp", True),
        # v0.144 renamed them; `otlp`/`otlphttp` would warn at every start.
        ("0.144", "otlp_grpc", "otlp_http", True),
        ("0.158.0", "otlp_grpc", "otlp_http", True),
        # v0.160 deprecates the batch processor: the exporter's queue batches.
        ("0.160.0", "otlp_grpc", "otlp_http", False),
    ],
)
def test_collector_version_decides_exporter_names_and_batching(
    version: str, grpc: str, http: str, batch_processor: bool
) -> None:
    inv = example_doc()
    inv["defaults"]["otelcol"] = {"version": version, "logs_pipeline": True}
    for h in inv["hosts"]:
        h.pop("vars", None)
    doc = otel_doc(fleet_of(inv))
    assert set(doc["exporters"]) == {f"{grpc}/traces", f"{http}/logs", "prometheus/spanmetrics"}
    pipelines = doc["service"]["pipelines"]
    assert pipelines["traces"]["exporters"][0] == f"{grpc}/traces"
    assert pipelines["logs"]["exporters"] == [f"{http}/logs"]
    assert ("batch" in doc["processors"]) is batch_processor
    for name in ("traces", "logs"):
        assert (pipelines[name]["processors"][-1] == "batch") is batch_processor
    # The connector's new name from v0.158 (the old one warns there).
    assert set(doc["connectors"]) == {"span_metrics" if version >= "0.158" else "spanmetrics"}
    for exporter in (doc["exporters"][f"{grpc}/traces"], doc["exporters"][f"{http}/logs"]):
        queue = exporter["sending_queue"]
        if batch_processor:
            assert queue == {"enabled": True, "queue_size": 5000}
        else:
            assert queue == {
                "enabled": True,
                "sizer": "items",
                "queue_size": 100000,
                "batch": {"flush_timeout": "5s", "min_size": 8192, "max_size": 16384},
            }


def test_request_metrics_from_every_span_even_when_traces_are_sampled() -> None:
    fleet = example_fleet()
    sampled = otel_doc(fleet, 5)  # sampling_percentage: 25
    pipelines = sampled["service"]["pipelines"]
    # The sampled pipeline does not feed the connector; a second one sees every span.
    assert pipelines["traces"]["exporters"] == ["otlp_grpc/traces"]
    assert pipelines["traces/spanmetrics"] == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "resource"],
        "exporters": ["span_metrics"],
    }
    connector = sampled["connectors"]["span_metrics"]
    assert connector["histogram"]["unit"] == "s"
    assert connector["dimensions"] == [{"name": "rpc.method"}, {"name": "rpc.grpc.status_code"}]
    assert sampled["exporters"]["prometheus/spanmetrics"] == {"endpoint": "127.0.0.1:8889"}


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
    exporter = doc["exporters"]["otlp_grpc/traces"]
    assert exporter["endpoint"] == "tempo.example.internal:4317"
    assert exporter["tls"] == {"insecure": False}
    assert "headers" not in exporter
    assert "auth" not in exporter
    inv = example_doc()
    inv["central"]["traces"].update({"insecure": True, "ca_file": "/ca.pem"})
    insecure = otel_doc(fleet_of(inv))["exporters"]["otlp_grpc/traces"]
    assert insecure["tls"] == {"insecure": True}  # a CA means nothing in plaintext
    inv["central"]["traces"].update({"insecure": False})
    assert otel_doc(fleet_of(inv))["exporters"]["otlp_grpc/traces"]["tls"] == {
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
    exporter = doc["exporters"]["otlp_grpc/traces"]
    assert exporter["headers"] == {
        "Authorization": "${env:TEMPO_AUTH}",
        "X-Scope-OrgID": "${env:TEMPO_TENANT}",
    }
    assert exporter["auth"] == {"authenticator": "bearertokenauth/traces"}
    assert doc["extensions"]["bearertokenauth/traces"] == {"filename": "/etc/flobs/tempo-token"}
    assert doc["service"]["extensions"] == ["health_check", "bearertokenauth/traces"]
    inv["central"]["traces"].pop("bearer_token_file")
    # A password file the collector reads as it is: never ${file:…}, which YAML-parses
    # the secret (a password starting with `#` or `{`, or holding `: `, breaks).
    inv["central"]["traces"]["basic_auth"] = {"username": "fl", "password_file": "/etc/p}w $x"}
    basic = collector_view(otel_doc(fleet_of(inv)))
    assert basic["extensions"]["basicauth/traces"] == {
        "client_auth": {"username": "fl", "password_file": "/etc/p}w $x"}
    }


@pytest.mark.parametrize(("source", "receiver"), [("journal", "journald"), ("file", "file_log")])
@pytest.mark.parametrize(
    ("backend", "url", "endpoint"),
    [
        (
            "loki",
            "https://loki.example/loki/api/v1/push",
            "https://loki.example/otlp/v1/logs",
        ),
        (
            "victorialogs",
            "https://vl.example:9428",
            "https://vl.example:9428/insert/opentelemetry/v1/logs",
        ),
    ],
)
def test_logs_pipeline_has_its_own_exporter_to_the_log_store(
    source: str, receiver: str, backend: str, url: str, endpoint: str
) -> None:
    inv = example_doc()
    for h in inv["hosts"]:
        h.pop("vars", None)
    inv["defaults"]["logs"].update({"source": source, "positions_dir": "/data/logs"})
    inv["defaults"]["otelcol"] = {"logs_pipeline": True, "sampling_percentage": 10}
    inv["central"].pop("loki")
    inv["central"]["logs"] = {"backend": backend, "url": url, "bearer_token_file": "/etc/tok"}
    doc = otel_doc(fleet_of(inv))
    assert doc["service"]["pipelines"]["logs"] == {
        "receivers": ["otlp", receiver],
        # logs are never sampled; resource/logs names the streams
        "processors": ["memory_limiter", "resource", "resource/logs", "batch"],
        # never the traces exporter: Tempo and Jaeger have no OTLP logs service
        "exporters": ["otlp_http/logs"],
    }
    exporter = doc["exporters"]["otlp_http/logs"]
    assert exporter["logs_endpoint"] == endpoint
    assert exporter["auth"] == {"authenticator": "bearertokenauth/logs"}
    assert doc["extensions"]["bearertokenauth/logs"] == {"filename": "/etc/tok"}
    resource = {a["key"]: a["value"] for a in doc["processors"]["resource/logs"]["attributes"]}
    want = {"cluster": "eu1", "host": "fl-eu1-a-01", "service.name": "flintlockd"}
    if source == "journal":
        want["unit"] = "flintlockd.service"
    assert resource == want
    if backend == "victorialogs":
        # The same stream as Promtail's Loki labels; vmid and trace ids stay fields.
        fields = "cluster,host,rack,region,zone"
        fields += ",unit" if source == "journal" else ""
        assert exporter["headers"] == {"VL-Stream-Fields": fields + ",level,component"}
    else:
        assert "headers" not in exporter
    rec = doc["receivers"][receiver]
    parser = rec["operators"][-1]
    if source == "journal":
        assert rec["units"] == ["flintlockd.service"]
        # MESSAGE (flintlockd's line) becomes the body, then its JSON is parsed.
        assert rec["operators"][0] == {"type": "move", "from": "body.MESSAGE", "to": "body"}
    else:
        assert rec["include"] == ["/var/log/flintlockd/flintlockd.log"]
        assert len(rec["operators"]) == 1
    assert parser["parse_from"] == "body"
    assert parser["on_error"] == "send_quiet"
    assert parser["timestamp"]["layout"] == "2006-01-02T15:04:05Z07:00"
    # logrus' panic level has no severity in the default mapping.
    assert parser["severity"] == {"parse_from": "attributes.level", "mapping": {"fatal2": "panic"}}
    assert "storage" not in rec


def test_tenant_headers_follow_the_backend() -> None:
    inv = example_doc()
    inv["defaults"]["otelcol"] = {"logs_pipeline": True}
    inv["central"]["loki"]["tenant"] = "team-a"
    doc = otel_doc(fleet_of(inv))
    assert doc["exporters"]["otlp_http/logs"]["headers"] == {"X-Scope-OrgID": "team-a"}
    inv["central"]["logs"] = {"backend": "victorialogs", "url": "http://vl:9428", "tenant": "12:3"}
    inv["central"].pop("loki")
    headers = otel_doc(fleet_of(inv))["exporters"]["otlp_http/logs"]["headers"]
    assert (headers["AccountID"], headers["ProjectID"]) == ("12", "3")


def test_hostile_values_round_trip_and_dollars_never_expand() -> None:
    fleet = fleet_of(hostile_doc())
    doc = otel_doc(fleet, 0)
    seen = collector_view(doc)
    attrs = {a["key"]: a["value"] for a in seen["processors"]["resource"]["attributes"]}
    assert attrs["flintlock.cluster"] == HOSTILE
    assert attrs["rack"] == HOSTILE
    assert attrs["note"] == "{{ template }}"
    assert seen["extensions"]["bearertokenauth/traces"]["filename"] == "/etc/flobs/tok $x {{ y }}"
    assert seen["exporters"]["otlp_grpc/traces"]["tls"]["ca_file"] == "/etc/ssl/$HOME/ca.pem"
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
    (data,) = otelcol.host_files(fleet.host_scope, fleet.hosts[0]).values()
    ruamel, _ = yamlio.load_with_positions(data.decode(), backend="ruamel")
    assert ruamel == doc


def test_disabled_collector_writes_nothing() -> None:
    inv = example_doc()
    inv["defaults"]["otelcol"] = {"enabled": False}
    fleet = fleet_of(inv)
    assert otelcol.host_files(fleet.host_scope, fleet.hosts[0]) == {}


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
    (data,) = promtail.host_files(fleet.host_scope, host).values()
    labels = yamlio.load(data.decode())["clients"][0]["external_labels"]
    assert labels == {
        "cluster": cluster,
        "host": host.name,
        "service_name": "flintlockd",
        "rack": value,
    }
    blocks = alloy.parse(alloy.render(fleet.host_scope, host))
    (write,) = [b for b in blocks if b.name == "loki.write"]
    assert write.attrs["external_labels"] == labels
