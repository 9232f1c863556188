"""PromQL: every expression parses, and none takes rate() of a Firecracker delta."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any, ClassVar

import promql_parser

from flobs import promql
from flobs.checks import CheckContext, FileCheck, register
from flobs.checks import kinds as k
from flobs.problems import Problem

KeyPath = tuple[str | int, ...]

# Functions that assume a monotonically increasing counter.
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase"})
FIRECRACKER_PREFIX = "firecracker_"


def expressions(ctx: CheckContext, path: str) -> Iterator[tuple[KeyPath, str, str]]:
    """(key path, expression as written, parseable expression) in one file."""
    if k.matches(path, k.RULE_FILES):
        for key_path, expr in k.rule_exprs(k.data(ctx, path)):
            yield key_path, expr, expr
    elif k.matches(path, k.DASHBOARDS):
        for key_path, expr in k.panel_exprs(k.data(ctx, path)):
            # Grafana replaces $host, ${__rate_interval}, … before Prometheus sees it.
            yield key_path, expr, promql.substitute(expr)
    elif k.matches(path, k.PROMETHEUS_CONFIGS):
        doc = k.data(ctx, path)
        if not isinstance(doc, dict):
            return
        for i, job in enumerate(k.seq(doc.get("scrape_configs"))):
            params = job.get("params") if isinstance(job, dict) else None
            if not isinstance(params, dict):
                continue
            for j, selector in enumerate(k.seq(params.get("match[]"))):
                yield (
                    ("scrape_configs", i, "params", "match[]", j),
                    str(selector),
                    str(selector),
                )


@register
class PromqlParses(FileCheck):
    """Every PromQL expression parses: rules, dashboard queries, federation `match[]`.

    Why: a rule that does not parse stops Prometheus from loading its whole rules file;
    a dashboard query that does not parse shows an error instead of a graph. Grafana
    variables (`$host`, `${__rate_interval}`, `$__interval`, `$__range`) are replaced
    first. Example: `sum(rate(up[$__rate_interval])` (a missing parenthesis).
    """

    ID = "promql-parse"
    TITLE = "PromQL expressions parse"
    FILES: ClassVar[tuple[str, ...]] = (*k.RULE_FILES, *k.DASHBOARDS, *k.PROMETHEUS_CONFIGS)

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        for key_path, shown, expr in expressions(ctx, path):
            error = promql.parse_error(expr)
            if error is not None:
                first = error.strip().splitlines()[0] if error.strip() else "parse error"
                yield ctx.problem(
                    self, path, f"PromQL does not parse: {first}: {shown}", key_path=key_path
                )


def _reads_firecracker(node: Any) -> str | None:
    found: list[str] = []

    def visit(n: object, *_: object) -> None:
        if isinstance(n, promql_parser.VectorSelector):
            sel = promql.Selector(
                n.name, tuple((m.name, str(m.op), m.value) for m in n.matchers.matchers)
            )
            nm = sel.name_matcher()
            if nm and nm[1].startswith(FIRECRACKER_PREFIX):
                found.append(nm[1])

    promql_parser.walk(node, visit)
    return found[0] if found else None


@lru_cache(maxsize=4096)  # every host's rules repeat the same expressions
def counter_misuse(expr: str) -> tuple[tuple[str, str], ...]:
    """(function, series) for each rate()/irate()/increase() over a firecracker_* series."""
    try:
        tree = promql_parser.parse(expr)
    except ValueError:
        return ()
    hits: list[tuple[str, str]] = []

    def visit(n: object, *_: object) -> None:
        if isinstance(n, promql_parser.Call) and n.func.name in COUNTER_FUNCTIONS:
            for arg in n.args:
                series = _reads_firecracker(arg)
                if series:
                    hits.append((n.func.name, series))

    promql_parser.walk(tree, visit)
    return tuple(hits)


@register
class FirecrackerNoRate(FileCheck):
    """No `rate()`, `irate()` or `increase()` over `firecracker_*` series.

    Why: Firecracker writes each counter as the delta since its previous flush, not a
    running total (flintlock-facts.md), so counter functions see resets everywhere and
    return nonsense. Divide by the flush interval instead (the `microvm:*:per_second`
    recording rules do). Example: `rate(firecracker_net_rx_bytes_count[5m])` in a panel.
    """

    ID = "firecracker-no-rate"
    TITLE = "no rate() over Firecracker deltas"
    FILES: ClassVar[tuple[str, ...]] = (*k.RULE_FILES, *k.DASHBOARDS)

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        for key_path, _shown, expr in expressions(ctx, path):
            if FIRECRACKER_PREFIX not in expr:
                continue
            for func, series in counter_misuse(expr):
                yield ctx.problem(
                    self,
                    path,
                    f"{func}() over {series}: Firecracker series are per-flush "
                    "deltas, not counters",
                    key_path=key_path,
                    hint=f"use the microvm:{series}:per_second recording rule, or divide "
                    f"{series} by the flush interval",
                )
