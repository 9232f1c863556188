"""Property: anchors, aliases and merge keys mean exactly their expansion.

An inventory written with ``&anchor``, ``*alias`` and ``<<: *merge`` loads to the same
fleet as the same inventory written out in full, or fails with the same problems
(key path and message) — each located at the line where the offending text really
is (an aliased value's text is at its anchor) — and either way within a second.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flobs import yamlio
from flobs.errors import InputError
from flobs.inventory import load_fleet_text
from flobs.problems import Problem

# Var values: mostly valid, some each of a kind the schema or the builder refuses.
VAR_VALUES: dict[str, list[Any]] = {
    "scrape_interval": ["15s", "30s", "1m", "bogus", 15],
    "scrape_timeout": ["5s", "10s", "45s"],
    "evaluation_interval": ["30s", "1m"],
    "node_exporter": [
        {"endpoint": "127.0.0.1:9100"},
        {"endpoint": "127.0.0.1:9101", "sample_limit": 100},
        {"endpoint": "0.0.0.0:9100"},  # public without allow_public: builder error
        {"endpoint": "127.0.0.1:70000"},  # port out of range: builder error
        {"endpont": "127.0.0.1:9100"},  # unknown key: schema error at the key
    ],
    "local_prometheus": [{"listen": "0.0.0.0:9091"}, {"listen": "0.0.0.0:9090"}],
    "otelcol": [{"enabled": False}, {"memory_limit_mib": 64, "memory_spike_limit_mib": 80}],
    "scrape_intervall": ["15s"],  # unknown key (did you mean)
}

var_maps = st.dictionaries(
    st.sampled_from(sorted(VAR_VALUES)),
    st.integers(0, 4),
    min_size=1,
    max_size=4,
).map(lambda d: {k: VAR_VALUES[k][i % len(VAR_VALUES[k])] for k, i in sorted(d.items())})


def _flow(value: Any) -> str:
    """One-line YAML for a var value (JSON is YAML; flobs writes no tags)."""
    return json.dumps(value)


class _Writer:
    """Writes the inventory as text, remembering the line of every path it writes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.at: dict[tuple[Any, ...], int] = {}
        self.anchors: dict[int, tuple[str, dict[str, Any], dict[str, int]]] = {}

    def put(self, text: str, path: tuple[Any, ...] | None = None) -> int:
        self.lines.append(text)
        if path is not None:
            self.at[path] = len(self.lines)
        return len(self.lines)

    def var_block(
        self, indent: str, path: tuple[Any, ...], values: dict[str, Any]
    ) -> dict[str, int]:
        lines = {}
        for k, v in values.items():
            lines[k] = self.put(f"{indent}{k}: {_flow(v)}", (*path, k))
        return lines

    def vars(
        self,
        indent: str,
        path: tuple[Any, ...],
        pool: int,
        values: dict[str, Any],
        how: str,
        overrides: dict[str, Any],
    ) -> dict[str, Any]:
        """Write ``vars`` for pool entry ``pool``: anchored the first time, then aliased
        (``how == "alias"``) or merged with ``overrides``; returns the expanded value."""
        if pool not in self.anchors:
            self.put(f"{indent}vars: &v{pool}", path)
            lines = self.var_block(indent + "  ", path, values)
            self.anchors[pool] = (f"v{pool}", values, lines)
            return dict(values)
        name, anchored, lines = self.anchors[pool]
        if how == "alias":
            self.put(f"{indent}vars: *{name}", path)
            for k in anchored:
                self.at[(*path, k)] = lines[k]
            return dict(anchored)
        self.put(f"{indent}vars:", path)
        if how == "merge":
            self.put(f"{indent}  <<: *{name}")
        own = self.var_block(indent + "  ", path, overrides)
        if how == "merge-last":  # the merge key may come after the keys that win over it
            self.put(f"{indent}  <<: *{name}")
        for k in anchored:
            if k not in own:
                self.at[(*path, k)] = lines[k]
        return {**overrides, **{k: v for k, v in anchored.items() if k not in overrides}}


@st.composite
def aliased_inventories(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[tuple[Any, ...], int]]:
    pool = draw(st.lists(var_maps, min_size=1, max_size=3))
    w = _Writer()
    w.put("apiVersion: flobs/v1")
    w.put("cluster: c")
    doc: dict[str, Any] = {"apiVersion": "flobs/v1", "cluster": "c"}
    if draw(st.booleans()):
        w.put("defaults:", ("defaults",))
        doc["defaults"] = dict(pool[0])
        w.var_block("  ", ("defaults",), pool[0])
    w.put("hosts:", ("hosts",))
    hosts = []
    for i in range(draw(st.integers(1, 4))):
        path = ("hosts", i)
        host: dict[str, Any] = {"name": f"h{i}", "address": f"10.0.0.{i + 1}"}
        if i and draw(st.booleans()):
            # `- <<: *h0` then its own name: the address (and vars) come from host 0,
            # so the address is a duplicate whose text is on host 0's line.
            w.put("  - <<: *h0", path)
            w.put(f"    name: h{i}", (*path, "name"))
            w.at[(*path, "address")] = w.at[("hosts", 0, "address")]
            host = {**hosts[0], "name": f"h{i}"}
            for p, line in list(w.at.items()):
                if p[:3] == ("hosts", 0, "vars"):
                    w.at[(*path, *p[2:])] = line
            hosts.append(host)
            continue
        if i == 0:
            w.put("  - &h0", path)
            w.put(f"    name: h{i}", (*path, "name"))
        else:
            w.put(f"  - name: h{i}", path)
            w.at[(*path, "name")] = len(w.lines)
        w.put(f"    address: 10.0.0.{i + 1}", (*path, "address"))
        if draw(st.booleans()):
            p = draw(st.integers(0, len(pool) - 1))
            how = draw(st.sampled_from(["alias", "merge", "merge-last"]))
            # Overrides of the anchor's own keys (the interesting case) and new keys.
            overrides = {
                **draw(var_maps),
                **draw(
                    st.fixed_dictionaries(
                        {}, optional={k: st.sampled_from(VAR_VALUES[k]) for k in pool[p]}
                    )
                ),
            }
            host["vars"] = w.vars("    ", (*path, "vars"), p, pool[p], how, overrides)
        hosts.append(host)
    doc["hosts"] = hosts
    w.put("central:", ("central",))
    w.put("  prometheus: {listen: 0.0.0.0:9090}", ("central", "prometheus"))
    w.put("  loki: {url: https://loki.example/loki/api/v1/push}", ("central", "loki"))
    w.put("  traces: {otlp_endpoint: tempo.example:4317}", ("central", "traces"))
    w.put("  grafana: {url: https://grafana.example}", ("central", "grafana"))
    doc["central"] = {
        "prometheus": {"listen": "0.0.0.0:9090"},
        "loki": {"url": "https://loki.example/loki/api/v1/push"},
        "traces": {"otlp_endpoint": "tempo.example:4317"},
        "grafana": {"url": "https://grafana.example"},
    }
    return "\n".join(w.lines) + "\n", doc, w.at


def _outcome(text: str) -> Any:
    start = time.monotonic()
    try:
        fleet = load_fleet_text(text.encode(), "inv.yaml").fleet
        result: Any = dataclasses.replace(fleet, source_sha256="")
    except InputError as err:
        result = err.problems
    assert time.monotonic() - start < 1.0
    return result


def _expected_line(problem: Problem, at: dict[tuple[Any, ...], int], doc: dict[str, Any]) -> int:
    """The line the writer put the problem's path (or its nearest written parent) on."""
    by_text = {yamlio.format_path(p): line for p, line in at.items()}
    path = problem.key_path or "$"
    while path not in by_text:
        assert path != "$", problem
        path = path[: max(path.rfind("."), path.rfind("["))]
    return by_text[path]


@given(case=aliased_inventories())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_anchors_mean_their_expansion(
    case: tuple[str, dict[str, Any], dict[tuple[Any, ...], int]],
) -> None:
    text, expanded, at = case
    got = _outcome(text)
    want = _outcome(yamlio.dump(expanded))
    if not isinstance(want, tuple):
        assert got == want, text
        return
    assert isinstance(got, tuple), text
    assert sorted((p.key_path, p.message) for p in got) == sorted(
        (p.key_path, p.message) for p in want
    ), text
    for problem in got:
        assert problem.line == _expected_line(problem, at, expanded), (problem, text)
