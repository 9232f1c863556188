"""Every log/trace backend combination: each artifact follows the choice, and the tree
passes `flobs validate` (datasource cross-references, dashboards, closure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.generate import generate
from flobs.problems import Severity
from flobs.validate import validate
from tests.artifacts.test_promtail import example_doc

COMBOS = [
    ("loki", "tempo"),
    ("loki", "jaeger"),
    ("victorialogs", "tempo"),
    ("victorialogs", "jaeger"),
]
DS_TYPES = {
    "loki": "loki",
    "victorialogs": "victoriametrics-logs-datasource",
    "tempo": "tempo",
    "jaeger": "jaeger",
}


def inventory(tmp_path: Path, logs: str, traces: str) -> Path:
    doc = example_doc()
    doc["central"].pop("loki")
    doc["central"]["logs"] = {
        "backend": logs,
        "url": "https://loki.example/loki/api/v1/push" if logs == "loki" else "https://vl.example",
        "bearer_token_file": "/etc/flobs/logs-token",
    }
    doc["central"]["traces"]["backend"] = traces
    # Half the hosts ship logs through the collector, half through Promtail/Alloy.
    for host in doc["hosts"][:3]:
        host.setdefault("vars", {})["otelcol"] = {"logs_pipeline": True}
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    return path


def targets(out: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((out / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))

        def walk(panels: list[dict[str, Any]]) -> None:
            for panel in panels:
                walk(panel.get("panels") or [])
                for target in panel.get("targets") or []:
                    found.append((panel["title"], target))

        walk(board.get("panels") or [])
    return found


@pytest.mark.parametrize(("logs", "traces"), COMBOS)
def test_every_artifact_follows_the_backends(tmp_path: Path, logs: str, traces: str) -> None:
    inv = inventory(tmp_path, logs, traces)
    out = tmp_path / "out"
    fleet = generate(inv, out).fleet
    result = validate(out, inventory=inv, tools="off")
    errors = [p.render() for p in result.problems if p.severity is Severity.ERROR]
    assert errors == []
    ds = yamlio.load((out / "grafana/provisioning/datasources/flobs.yaml").read_text())
    by_uid = {d["uid"]: d for d in ds["datasources"]}
    logs_ds = by_uid[f"flobs-{logs}"]
    traces_ds = by_uid[f"flobs-{traces}"]
    assert (logs_ds["type"], traces_ds["type"]) == (DS_TYPES[logs], DS_TYPES[traces])
    # Correlations point at the chosen stores both ways.
    assert {f["datasourceUid"] for f in logs_ds["jsonData"]["derivedFields"]} == {f"flobs-{traces}"}
    assert traces_ds["jsonData"]["tracesToLogsV2"]["datasourceUid"] == f"flobs-{logs}"
    assert by_uid["flobs-prometheus"]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"datasourceUid": f"flobs-{traces}", "name": "trace_id"}
    ]
    # Every log and trace panel queries the chosen store in its language.
    kinds = {"logs": 0, "traces": 0}
    for title, target in targets(out):
        ref = target["datasource"]
        if ref["type"] == DS_TYPES[logs]:
            kinds["logs"] += 1
            assert ref["uid"] == f"flobs-{logs}"
            if logs == "victorialogs":
                assert target["expr"].startswith('{cluster="$cluster"'), title
                assert target["queryType"] in ("instant", "statsRange")
            else:
                assert "expr" in target and "queryType" not in target
        elif ref["type"] == DS_TYPES[traces]:
            kinds["traces"] += 1
            if traces == "jaeger":
                assert target["queryType"] == "search"
                assert target["service"] == "flintlockd"
                assert 'host.name="$host"' in target["tags"]
            else:
                assert target["queryType"] == "traceql"
        else:
            assert ref["type"] == "prometheus", (title, ref)
    assert kinds["logs"] >= 3 and kinds["traces"] >= 1
    # Agents send to the chosen log store.
    host = fleet.hosts[0]
    otel = yamlio.load((out / "hosts" / host.name / "otelcol.yaml").read_text())
    endpoint = otel["exporters"]["otlp_http/logs"]["logs_endpoint"]
    assert endpoint == fleet.central.logs.otlp_logs_url
    shipper = out / "hosts" / fleet.hosts[3].name / "promtail.yml"
    client = yamlio.load(shipper.read_text())["clients"][0]
    assert client["url"] == fleet.central.logs.url
    if logs == "victorialogs":
        assert client["url"] == "https://vl.example/insert/loki/api/v1/push?_msg_field=msg"
        assert endpoint == "https://vl.example/insert/opentelemetry/v1/logs"
    else:
        assert endpoint == "https://loki.example/otlp/v1/logs"


def test_a_datasource_of_the_wrong_type_is_a_finding(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "victorialogs", "jaeger")
    out = tmp_path / "out"
    generate(inv, out)
    path = out / "grafana/provisioning/datasources/flobs.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("type: jaeger", "type: tempo"), encoding="utf-8")
    result = validate(out, inventory=inv, tools="off")
    messages = [p.message for p in result.problems if p.severity is Severity.ERROR]
    assert (
        "datasource 'flobs-jaeger' is provisioned as type 'tempo'; the inventory uses it for traces"
        in messages
    )
