"""promtail.yml: golden files, field mapping over a flintlockd corpus, escaping, variants.

The pipeline test does not trust the module's constants: it reads the stages from
the generated file and runs every corpus line through a small emulation of
Promtail's json / timestamp / labels / structured_metadata / labeldrop stages,
then compares with what ``json.loads`` says each line holds.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.artifacts import alloy, otelcol, promtail
from flobs.inventory import load_fleet_text
from flobs.model import Fleet
from tests.conftest import EXAMPLE_INVENTORY, REPO
from tests.helpers import run_flobs

GOLDEN = REPO / "tests" / "golden" / "logs-and-traces"
CORPUS = REPO / "tests" / "fixtures" / "flintlockd-logs" / "flintlockd.log"
LOGRUS_LEVELS = {"panic", "fatal", "error", "warning", "info", "debug", "trace"}
HOSTILE = "q\"uote ' nl\nx {{ .Values }} ${HOME} ${env:X} $$ $ # hash \\ back ü ✓ \t\u2028"


# --------------------------------------------------------------------------- helpers


def example_doc() -> dict[str, Any]:
    return copy.deepcopy(yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8")))


def fleet_of(doc: dict[str, Any]) -> Fleet:
    return load_fleet_text(yamlio.dump(doc).encode(), "inventory.yaml").fleet


def example_fleet() -> Fleet:
    return fleet_of(example_doc())


def hostile_doc() -> dict[str, Any]:
    """The example with hostile values wherever the inventory lets a user write text."""
    doc = example_doc()
    doc["cluster"] = HOSTILE
    doc["hosts"][0]["labels"] = {"rack": HOSTILE, "note": "{{ template }}"}
    doc["hosts"][5]["labels"] = {"rack": HOSTILE}
    doc["hosts"][5]["vars"]["logs"].update({"source": "file", "path": '/var/log/${x} "q" #.log'})
    doc["defaults"]["logs"]["positions_dir"] = "/var/lib/{{x}} $y #z"
    doc["central"]["loki"] = {
        "url": 'https://loki.example/loki/api/v1/push?x=${y}&q="',
        "tenant": HOSTILE,
        # A basic-auth user name cannot contain `:` (RFC 7617; refused by the loader).
        "basic_auth": {
            "username": HOSTILE.replace(":", ""),
            "password_file": '/etc/flobs/pw ${x} "q"',
        },
        "ca_file": "/etc/ssl/ü ca.pem",
    }
    doc["central"]["traces"] = {
        "otlp_endpoint": "tempo.example:4317",
        "bearer_token_file": "/etc/flobs/tok $x {{ y }}",
        "ca_file": "/etc/ssl/$HOME/ca.pem",
        "headers_from_env": {"X-Scope-OrgID": "TEMPO_TENANT", "Authorization": "TEMPO_AUTH"},
    }
    return doc


def promtail_doc(fleet: Fleet, host_index: int = 0) -> dict[str, Any]:
    host = fleet.hosts[host_index]
    (data,) = promtail.host_files(fleet.host_scope, host).values()
    loaded: dict[str, Any] = yamlio.load(data.decode())
    return loaded


def check_golden(rel: str, data: bytes) -> None:
    """Compare with tests/golden/logs-and-traces/REL; FLOBS_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / rel
    if os.environ.get("FLOBS_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    assert path.exists(), f"missing golden file {path}; create it with FLOBS_UPDATE_GOLDEN=1"
    assert data.decode() == path.read_text(encoding="utf-8"), (
        f"{rel} differs from its golden file; review the change, then rerun with "
        "FLOBS_UPDATE_GOLDEN=1"
    )


# --------------------------------------------------------------------------- pipeline emulation


@dataclass
class Entry:
    line: str
    timestamp: datetime
    labels: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    extracted: dict[str, Any] = field(default_factory=dict)


_JMES_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _jmes_get(obj: dict[str, Any], expression: str) -> Any:
    """The JMESPath subset a field mapping may use: a bare or quoted identifier."""
    if _JMES_IDENT.fullmatch(expression):
        return obj.get(expression)
    if expression.startswith('"') and expression.endswith('"'):
        return obj.get(json.loads(expression))
    raise AssertionError(f"expression {expression!r} is more than a field name")


def _as_label(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


def run_pipeline(stages: list[dict[str, Any]], line: str, read_time: datetime) -> Entry | None:
    """Emulate Promtail's stages on one line; ``None`` means the line was dropped."""
    entry = Entry(line, read_time)
    for stage in stages:
        ((kind, body),) = stage.items()
        if kind == "json":
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                if body.get("drop_malformed"):
                    return None
                continue
            for name, expression in body["expressions"].items():
                value = _jmes_get(obj, expression or name)
                if value is not None:
                    entry.extracted[name] = value
        elif kind == "timestamp":
            assert body["format"] == "RFC3339"
            raw = entry.extracted.get(body["source"])
            try:
                entry.timestamp = datetime.fromisoformat(str(raw)).astimezone(UTC)
            except ValueError:
                # Only `skip` keeps the read time. Promtail's default `fudge` stamps the
                # previous entry's time + 1 ns: a panic read minutes after the last JSON
                # line would be filed at that line's time (the bug this pins).
                assert body.get("action_on_failure", "fudge") == "skip", body
        elif kind in ("labels", "structured_metadata"):
            target = entry.labels if kind == "labels" else entry.metadata
            for name, source in body.items():
                value = _as_label(entry.extracted.get(source or name))
                if value is not None:
                    target[name] = value
        elif kind == "labeldrop":
            for name in body:
                entry.labels.pop(name, None)
        else:
            raise AssertionError(f"unknown stage {kind}")
    return entry


def corpus_lines() -> list[str]:
    return CORPUS.read_text(encoding="utf-8").splitlines()


# --------------------------------------------------------------------------- tests


def test_golden_files_for_the_example() -> None:
    fleet = example_fleet()
    produced: dict[str, bytes] = {}
    for host in fleet.hosts:
        for module in (promtail, alloy, otelcol):
            produced.update(module.host_files(fleet.host_scope, host))
    names = sorted(p.split("/", 1)[1] for p in produced)
    # Five promtail hosts, one Alloy host (fl-eu1-b-03), a collector everywhere.
    assert sum(n.endswith("promtail.yml") for n in names) == 5
    assert [n for n in names if n.endswith("config.alloy")] == ["fl-eu1-b-03/config.alloy"]
    assert sum(n.endswith("otelcol.yaml") for n in names) == 6
    for path, data in produced.items():
        check_golden(path.split("/", 1)[1], data)


def test_corpus_goes_through_the_declared_field_mapping() -> None:
    doc = promtail_doc(example_fleet())
    (job,) = doc["scrape_configs"]
    read_time = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)
    lines = corpus_lines()
    entries = [run_pipeline(job["pipeline_stages"], line, read_time) for line in lines]
    non_json = 0
    for line, entry in zip(lines, entries, strict=True):
        assert entry is not None, f"line dropped: {line}"
        assert entry.line == line  # the line itself is shipped unchanged
        try:
            obj = json.loads(line)
        except ValueError:
            non_json += 1
            assert entry.labels == {}
            assert entry.metadata == {}
            assert entry.timestamp == read_time
            continue
        assert entry.labels == {k: obj[k] for k in ("level", "component") if k in obj}
        assert entry.metadata == {k: obj[k] for k in ("vmid", "trace_id", "span_id") if k in obj}
        for key in ("msg", "action"):
            assert entry.extracted.get(key) == obj.get(key)
        if "time" in obj:
            assert entry.timestamp == datetime.fromisoformat(obj["time"]).astimezone(UTC)
        else:
            assert entry.timestamp == read_time
    # The corpus' non-JSON tail: logrus text, a panic with its goroutine dump, a cut line.
    assert non_json == 6
    assert {e.labels.get("level") for e in entries if e and "level" in e.labels} == {
        "info",
        "debug",
        "warning",
        "error",
        "trace",
    }
    assert {e.labels["level"] for e in entries if e and "level" in e.labels} <= LOGRUS_LEVELS
    assert {e.labels.get("component") for e in entries if e and e.labels} == {None, "app", "plans"}
    with_vmid = [e for e in entries if e and "vmid" in e.metadata]
    assert len(with_vmid) == 12  # grep -c '"vmid"' on the corpus
    assert all("vmid" not in e.labels for e in entries if e)
    # Spot checks against the corpus, read by eye from the fixture.
    failed = entries[18]
    assert failed is not None
    assert failed.labels == {"level": "error", "component": "plans"}
    assert failed.metadata == {
        "vmid": "ns2/db-1/01JDK7R0A1B2C3D4E5F6G7H8J9",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "e457b5a2e4d86bd1",
    }
    assert failed.timestamp == datetime(2026, 11, 24, 10, 2, 1, 377000, tzinfo=UTC)
    offset = entries[20]
    assert offset is not None
    assert offset.timestamp == datetime(2026, 11, 24, 11, 30, tzinfo=UTC)


def test_journal_source_keeps_only_the_unit_from_the_journal() -> None:
    doc = promtail_doc(example_fleet())
    (job,) = doc["scrape_configs"]
    assert job["journal"]["matches"] == "_SYSTEMD_UNIT=flintlockd.service"
    assert job["journal"]["json"] is False  # the line is flintlockd's own JSON
    assert job["relabel_configs"] == [
        {"source_labels": ["__journal__systemd_unit"], "target_label": "unit"}
    ]
    assert "static_configs" not in job
    assert {"labeldrop": ["filename"]} not in job["pipeline_stages"]


def test_file_source_reads_the_path_and_drops_the_filename_label() -> None:
    doc = example_doc()
    doc["defaults"]["logs"].update({"source": "file", "path": "/srv/flintlockd.log"})
    job = promtail_doc(fleet_of(doc))["scrape_configs"][0]
    assert job["static_configs"] == [
        {"targets": ["localhost"], "labels": {"__path__": "/srv/flintlockd.log"}}
    ]
    assert "journal" not in job
    assert "relabel_configs" not in job
    assert job["pipeline_stages"][-1] == {"labeldrop": ["filename"]}


def test_server_positions_and_client_follow_the_inventory() -> None:
    doc = example_doc()
    doc["defaults"]["logs"].update({"listen": "127.0.0.2:9580", "positions_dir": "/data/logs/"})
    doc["central"]["loki"] = {
        "url": "https://loki.example/loki/api/v1/push",
        "basic_auth": {"username": "fl", "password_file": "/etc/flobs/loki-pw"},
        "ca_file": "/etc/flobs/ca.pem",
        "cert_file": "/etc/flobs/c.pem",
        "key_file": "/etc/flobs/c.key",
    }
    fleet = fleet_of(doc)
    out = promtail_doc(fleet)
    assert out["server"]["http_listen_address"] == "127.0.0.2"
    assert out["server"]["http_listen_port"] == 9580
    assert out["server"]["grpc_listen_address"] == "127.0.0.2"
    assert out["positions"]["filename"] == "/data/logs/positions.yaml"
    (client,) = out["clients"]
    assert client["basic_auth"] == {"username": "fl", "password_file": "/etc/flobs/loki-pw"}
    assert client["tls_config"] == {
        "ca_file": "/etc/flobs/ca.pem",
        "cert_file": "/etc/flobs/c.pem",
        "key_file": "/etc/flobs/c.key",
    }
    assert "tenant_id" not in client
    assert "bearer_token_file" not in client
    assert client["external_labels"] == {
        "cluster": "eu1",
        "host": "fl-eu1-a-01",
        # Constant, so Loki 3 never derives service_name from `component`.
        "service_name": "flintlockd",
        "rack": "r01",
        "region": "eu-west-1",
        "zone": "a",
    }


def test_bearer_token_is_a_path_and_tls_verification_stays_on() -> None:
    fleet = example_fleet()
    client = promtail_doc(fleet)["clients"][0]
    assert client["bearer_token_file"] == "/etc/flobs/secrets/loki-token"
    assert client["tenant_id"] == "flintlock-eu1"
    assert "tls_config" not in client  # no insecure_skip_verify unless the inventory says so


def test_hostile_values_round_trip() -> None:
    fleet = fleet_of(hostile_doc())
    assert fleet.cluster == HOSTILE
    for backend in ("libyaml", "ruamel"):
        (data,) = promtail.host_files(fleet.host_scope, fleet.hosts[0]).values()
        out, _ = yamlio.load_with_positions(data.decode(), backend=backend)
        (client,) = out["clients"]
        assert client["external_labels"]["cluster"] == HOSTILE
        assert client["external_labels"]["rack"] == HOSTILE
        assert client["external_labels"]["note"] == "{{ template }}"
        assert client["tenant_id"] == HOSTILE
        assert client["url"] == 'https://loki.example/loki/api/v1/push?x=${y}&q="'
        assert client["basic_auth"] == {
            "username": HOSTILE.replace(":", ""),
            "password_file": '/etc/flobs/pw ${x} "q"',
        }
        assert client["tls_config"] == {"ca_file": "/etc/ssl/ü ca.pem"}
        assert out["positions"]["filename"] == "/var/lib/{{x}} $y #z/positions.yaml"
    # The hostile cluster name spans lines; every header line stays a comment.
    for line in data.decode().splitlines():
        assert not line.startswith(("x {{", "${")), line


def test_local_prometheus_scrapes_the_agents_over_loopback() -> None:
    from flobs.artifacts import prometheus_local

    doc = example_doc()
    doc["hosts"][0]["vars"] = {
        "logs": {"listen": "0.0.0.0:9580", "allow_public": True},
        "otelcol": {"metrics_endpoint": "0.0.0.0:18888", "allow_public": True},
    }
    fleet = fleet_of(doc)

    def targets(index: int) -> dict[str, list[str]]:
        jobs = prometheus_local.scrape_jobs(fleet.hosts[index])
        return {j["job_name"]: j["static_configs"][0]["targets"] for j in jobs}

    public = targets(0)
    assert public["promtail"] == ["127.0.0.1:9580"]
    assert public["otelcol"] == ["127.0.0.1:18888"]
    alloy_host = targets(5)
    assert alloy_host["alloy"] == ["127.0.0.1:9080"]
    assert "promtail" not in alloy_host


@pytest.mark.parametrize("agent", ["promtail", "alloy"])
def test_a_host_label_named_like_a_pipeline_label_is_refused(tmp_path: Path, agent: str) -> None:
    doc = example_doc()
    doc["defaults"]["logs"]["agent"] = agent
    doc["groups"]["eu1-b"]["labels"]["component"] = "compute"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yamlio.dump(doc), encoding="utf-8")
    result = run_flobs("generate", "-i", inventory, "-o", tmp_path / "out")
    assert result.code == 2, result
    # Located at the group label that causes it, reported once for all its hosts.
    assert (
        "$.groups.eu1-b.labels.component: label `component` is also a Loki label" in result.stderr
    )
    assert result.stderr.count("is also a Loki label") == 1
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out").exists()
