"""Fixtures for check tests: a private, writable copy of a generated tree.

A corruption test edits a copy of the example output and then calls ``rehash`` so the
manifest agrees again: only the check under test may fire, not ``manifest-hash``
(the hand-edited-file test is the one that skips ``rehash``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.problems import Severity
from flobs.validate import ValidateResult, validate
from tests.conftest import EXAMPLE_INVENTORY

# A small provisioned-Grafana layout; the dashboard generator (issue 4) may not exist
# yet, so dashboard checks run against these crafted files added to the real tree.
DATASOURCES = {
    "apiVersion": 1,
    "datasources": [
        {
            "name": "Prometheus",
            "type": "prometheus",
            "uid": "flobs-prometheus",
            "url": "http://prometheus.eu1.example.internal:9090",
            "access": "proxy",
            "jsonData": {
                "exemplarTraceIdDestinations": [
                    {"datasourceUid": "flobs-tempo", "name": "trace_id"}
                ]
            },
        },
        {
            "name": "Loki",
            "type": "loki",
            "uid": "flobs-loki",
            "url": "https://loki.example.internal",
            "access": "proxy",
        },
        {
            "name": "Tempo",
            "type": "tempo",
            "uid": "flobs-tempo",
            "url": "http://tempo.example.internal:3200",
            "access": "proxy",
            "jsonData": {"tracesToLogsV2": {"datasourceUid": "flobs-loki"}},
        },
    ],
}
PROM = {"type": "prometheus", "uid": "flobs-prometheus"}


def panel(
    pid: int,
    expr: str,
    *,
    x: int = 0,
    y: int = 0,
    unit: str | None = "short",
    ds: dict[str, str] | None = None,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": pid,
        "type": "timeseries",
        "title": f"panel {pid}",
        "datasource": ds or PROM,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "targets": [{"refId": "A", "expr": expr, "datasource": ds or PROM}],
        "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
    }
    return p


def dashboard(panels: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": "flobs-test",
        "title": "Test",
        "schemaVersion": 39,
        "panels": panels,
        "templating": {"list": [{"name": "host", "type": "query", "datasource": PROM}]},
    }


GOOD_PANELS = [
    panel(1, 'sum by (host) (host:grpc_server_handled:rate5m{host=~"$host"})', x=0),
    panel(
        2,
        'max(host:node_cpu_utilisation:ratio{host=~"${host}"}) * on() group_left() (vector(1))',
        x=12,
        unit="percentunit",
    ),
    panel(3, "sum(rate(up[$__rate_interval])) + count_over_time(up[$__range])", y=8),
]


def rehash(out: Path) -> None:
    """Make manifest.json list every file with its current hash (as generate would)."""
    manifest = json.loads((out / "manifest.json").read_text())
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and rel != "manifest.json":
            data = p.read_bytes()
            files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest["files"] = files
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def write_json(out: Path, rel: str, doc: Any) -> None:
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_text(json.dumps(doc, indent=2) + "\n")


def write_yaml(out: Path, rel: str, doc: Any) -> None:
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_text(yamlio.dump(doc))


def read_yaml(out: Path, rel: str) -> Any:
    return yamlio.load((out / rel).read_text())


@pytest.fixture
def tree(example_out: Path, tmp_path: Path) -> Path:
    """A writable copy of the example output, plus crafted Grafana files if none exist."""
    out = tmp_path / "out"
    shutil.copytree(example_out, out)
    if not list((out / "grafana").glob("dashboards/*.json")):
        write_yaml(out, "grafana/provisioning/datasources/flobs.yaml", DATASOURCES)
        write_json(out, "grafana/dashboards/test.json", dashboard(list(GOOD_PANELS)))
        rehash(out)
    return out


Run = Callable[..., ValidateResult]


@pytest.fixture
def run() -> Run:
    def _run(
        out: Path,
        *,
        inventory: Path | None = EXAMPLE_INVENTORY,
        tools: str = "off",
        strict: bool = False,
    ) -> ValidateResult:
        return validate(out, inventory=inventory, tools=tools, strict=strict)  # type: ignore[arg-type]

    return _run


def fired(result: ValidateResult, severity: Severity = Severity.ERROR) -> set[str]:
    return {p.check_id for p in result.problems if p.severity is severity}
