"""Property: whatever shape a hand edit gives any file flobs writes, validate reports
located findings (exit 0 or 1) and never crashes (exit 3)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flobs import yamlio
from flobs.errors import FlobsError
from tests.checks.conftest import rehash

HOST = "hosts/h1"
# The smallest fleet with every file kind: a Promtail host and an Alloy host.
INVENTORY = """\
apiVersion: flobs/v1
cluster: c1
groups:
  g1: {labels: {site: a}}
hosts:
  - {name: h1, address: 10.0.0.1, groups: [g1]}
  - {name: h2, address: 10.0.0.2, groups: [g1], vars: {logs: {agent: alloy}}}
central:
  prometheus: {listen: 0.0.0.0:9090}
  loki: {url: https://loki.example/loki/api/v1/push}
  traces: {otlp_endpoint: tempo.example:4317}
  grafana: {url: https://grafana.example}
"""

# One file of every kind `flobs generate` writes.
KINDS = [
    f"{HOST}/prometheus.yml",
    f"{HOST}/rules/flobs-local.yml",
    f"{HOST}/promtail.yml",
    f"{HOST}/otelcol.yaml",
    f"{HOST}/exporters/node_exporter-web.yml",
    f"{HOST}/exporters/process-exporter.yml",
    "central/prometheus.yml",
    "central/rules/flobs-alerts.yml",
    "central/rules/flobs-recording.yml",
    "central/tests/flobs-alerts.test.yml",
    "central/targets/g1.json",
    "grafana/dashboards/flobs-fleet.json",
    "grafana/dashboards/flobs-host.json",
    "grafana/dashboards/flobs-microvm.json",
    "grafana/provisioning/datasources/flobs.yaml",
    "grafana/provisioning/dashboards/flobs.yaml",
    "manifest.json",
    "hosts/h2/config.alloy",  # not YAML: mutated as text
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["up", "{", "$host", "${x}", "x[5m]", "a.b", "__name__", "127.0.0.1:1"])
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(data: st.DataObject, doc: Any) -> Any:
    """Replace, delete or retype one to three nodes of ``doc`` (the root included)."""
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(_paths(doc)), label="path")
        value = data.draw(junk, label="value")
        if not path:
            doc = value
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and data.draw(st.booleans(), label="delete"):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return doc


ALLOY_JUNK = st.sampled_from(
    ['"', "{", "}", "[", "]", "=", ",", "\n", "//", "/*", "0x", "1e999", "\\", "${", "a.b"]
) | st.text(max_size=6)


def _mutate_text(data: st.DataObject, text: str) -> str:
    """Insert, delete or replace one to three spans of ``text``."""
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        start = data.draw(st.integers(0, len(text)), label="start")
        end = data.draw(st.integers(start, min(len(text), start + 40)), label="end")
        text = text[:start] + data.draw(ALLOY_JUNK, label="insert") + text[end:]
    return text


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flobs.generate import generate

    root = tmp_path_factory.mktemp("any-shape")
    (root / "inventory.yaml").write_text(INVENTORY, encoding="utf-8")
    generate(root / "inventory.yaml", root / "out")
    return root


@pytest.mark.parametrize("rel", KINDS)
@given(data=st.data())
@settings(
    max_examples=int(os.environ.get("FLOBS_SHAPE_EXAMPLES", "5")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_shape_is_a_finding_never_a_crash(
    pristine: Path, tmp_path: Path, rel: str, data: st.DataObject
) -> None:
    out = tmp_path / "out"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(pristine / "out", out)
    text = (out / rel).read_text(encoding="utf-8")
    if rel.endswith(".alloy"):
        new = _mutate_text(data, text)
    elif rel.endswith(".json"):
        new = json.dumps(_mutate(data, json.loads(text)))
    else:
        new = yamlio.dump(_mutate(data, yamlio.load(text)))
    (out / rel).write_text(new, encoding="utf-8")
    if rel != "manifest.json":
        rehash(out)
    from flobs.validate import validate

    try:
        result = validate(out, inventory=pristine / "inventory.yaml", tools="off")
    except FlobsError as err:
        pytest.fail(f"validate raised {type(err).__name__} (exit {err.exit_code}): {err.message}")
    for problem in result.problems:
        assert problem.file is not None, problem
