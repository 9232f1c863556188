"""Property tests for the inventory loader (hypothesis).

* Any well-formed fleet loads, merges labels by precedence, and its label values
  come back unchanged from the generated Prometheus config and file_sd targets.
* Any corruption of a valid inventory ends in an ``InputError`` whose problems all
  carry a position — never in another exception.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flobs import yamlio
from flobs.artifacts import central, prometheus_local
from flobs.errors import InputError
from flobs.inventory import load_fleet_text
from flobs.problems import Problem, Severity
from tests.helpers import prometheus3_external_label

label_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in {"cluster", "host", "job", "instance"}
)
label_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20) | st.sampled_from(
    ['"', "\n", "{{ x }}", "${X}", "$", "# c", "on", "☃"]
)
labels = st.dictionaries(label_names, label_values, max_size=3)


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    group_names = draw(
        st.lists(st.from_regex(r"g[a-z0-9]{0,6}", fullmatch=True), unique=True, max_size=3)
    )
    groups = {g: {"labels": draw(labels)} for g in group_names}
    n = draw(st.integers(1, 4))
    hosts = []
    for i in range(n):
        host: dict[str, Any] = {
            "name": f"h{i}",
            "address": f"10.0.0.{i + 1}",
            "labels": draw(labels),
        }
        if group_names:
            host["groups"] = draw(st.lists(st.sampled_from(group_names), unique=True))
        hosts.append(host)
    return {
        "apiVersion": "flobs/v1",
        "cluster": draw(label_values.filter(bool)),
        "groups": groups,
        "hosts": hosts,
        "central": {
            "prometheus": {"listen": "0.0.0.0:9090"},
            "loki": {"url": "https://loki.example/loki/api/v1/push"},
            "traces": {"otlp_endpoint": "tempo.example:4317"},
            "grafana": {"url": "https://grafana.example"},
        },
    }


@given(doc=fleets())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_labels_merge_and_survive_generation(doc: dict[str, Any]) -> None:
    fleet = load_fleet_text(yamlio.dump(doc).encode(), "inv.yaml").fleet
    targets = {
        e["labels"]["host"]: e["labels"]
        for entries in central.targets(fleet).values()
        for e in json.loads(json.dumps(entries))
    }
    for raw, host in zip(doc["hosts"], fleet.hosts, strict=True):
        expected: dict[str, str] = {}
        for g in raw.get("groups", []):
            expected.update(doc["groups"][g]["labels"])
        expected.update(raw["labels"])
        assert host.label_dict == expected
        config = yamlio.load(
            prometheus_local.host_files(fleet.host_scope, host)[
                f"hosts/{host.name}/prometheus.yml"
            ].decode()
        )
        # As Prometheus 3 (the default version) reads them back.
        external = {
            k: prometheus3_external_label(v) for k, v in config["global"]["external_labels"].items()
        }
        assert external == {
            "cluster": doc["cluster"],
            "host": host.name,
            **expected,
        }
        assert targets[host.name] == {"cluster": doc["cluster"], "host": host.name, **expected}


BASE = {
    "apiVersion": "flobs/v1",
    "cluster": "c",
    "defaults": {"scrape_interval": "15s", "node_exporter": {"endpoint": "127.0.0.1:9100"}},
    "groups": {"g": {"labels": {"zone": "a"}, "vars": {"scrape_interval": "30s"}}},
    "hosts": [{"name": "h1", "address": "10.0.0.1", "groups": ["g"], "labels": {"rack": "r"}}],
    "central": {"prometheus": {"listen": "0.0.0.0:9090"}, "grafana": {"url": "https://g.example"}},
}
junk = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_corruption_is_a_located_input_error(data: st.DataObject) -> None:
    doc = json.loads(json.dumps(BASE))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(junk)
        if not _paths(doc):
            break
    # A corruption may leave a valid inventory; what must never happen is another
    # exception type, or a problem without a position.
    problems: list[Problem] = []
    try:
        load_fleet_text(yamlio.dump(doc).encode(), "inv.yaml")
    except InputError as err:
        problems = list(err.problems) or [Problem(None, None, None, "x", Severity.ERROR, "none")]
    for problem in problems:
        assert problem.file == "inv.yaml"
        assert problem.line is not None, problem


@given(text=st.text(max_size=200))
@settings(max_examples=150, deadline=None)
def test_arbitrary_text_never_crashes_the_loader(text: str) -> None:
    problems: list[Problem] = []
    try:
        load_fleet_text(text.encode(), "inv.yaml")
    except InputError as err:
        problems = list(err.problems)
    assert all(p.file == "inv.yaml" for p in problems)
