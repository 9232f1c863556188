"""PromQL helpers shared by dashboards, rules, validate, closure and verify.

* ``substitute``: replace Grafana variables (``$host``, ``${host}``, ``[[host]]``,
  ``$__rate_interval``, ``${__interval}``, ``$__range`` …) with concrete values so
  an expression can be parsed (promql-parser, promtool) or run (verify).
* ``parse_error``: why an expression does not parse, or None.
* ``selectors`` / ``metric_names``: the series selectors an expression reads.
* ``selector_matches``: does a federation ``match[]`` selector admit a metric name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import promql_parser

# Grafana's built-in interval/range variables and the values used to check them.
BUILTIN_VALUES: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__interval_ms": "30000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__auto": "1m",
}

_VAR = re.compile(
    r"\$\{(?P<braced>[A-Za-z0-9_]+)(?::[A-Za-z]+)?\}"  # ${name} / ${name:regex}
    r"|\[\[(?P<old>[A-Za-z0-9_]+)(?::[A-Za-z]+)?\]\]"  # [[name]] (deprecated syntax)
    r"|\$(?P<plain>[A-Za-z0-9_]+)"  # $name
)


def grafana_variables(expr: str) -> set[str]:
    """Names of the Grafana variables an expression uses."""
    return {m.group("braced") or m.group("old") or m.group("plain") for m in _VAR.finditer(expr)}


def substitute(expr: str, values: Mapping[str, str] | None = None, *, default: str = "x") -> str:
    """Replace Grafana variables; unknown ones become ``default`` (a plain label value).

    Values land inside label matchers (``host="$host"``) or as durations
    (``[$__rate_interval]``), so the built-ins get durations and the rest strings.
    """
    given = dict(values or {})

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("old") or m.group("plain")
        if name in given:
            return given[name]
        if name in BUILTIN_VALUES:
            return BUILTIN_VALUES[name]
        return default

    return _VAR.sub(repl, expr)


@lru_cache(maxsize=4096)
def _parse(expr: str) -> promql_parser.Expr:
    return promql_parser.parse(expr)


def parse_error(expr: str) -> str | None:
    """The parser's complaint about ``expr`` (already substituted), or None if it parses."""
    try:
        _parse(expr)
    except ValueError as err:
        return str(err)
    return None


@dataclass(frozen=True)
class Selector:
    """A vector selector: its metric name (if fixed) and its label matchers."""

    name: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value); op in = != =~ !~

    def name_matcher(self) -> tuple[str, str] | None:
        """(op, value) constraining __name__, if any."""
        if self.name is not None:
            return ("=", self.name)
        for label, op, value in self.matchers:
            if label == "__name__":
                return (op, value)
        return None


_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in ``expr`` (which must parse)."""
    found: list[Selector] = []

    def visit(node: object, *_: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(
                Selector(
                    node.name,
                    tuple(
                        (m.name, _OPS.get(str(m.op), str(m.op)), m.value)
                        for m in node.matchers.matchers
                    ),
                )
            )

    promql_parser.walk(_parse(expr), visit)
    return found


def metric_names(expr: str) -> set[str]:
    """Metric names ``expr`` reads by exact name (regex name matchers are not expanded)."""
    names: set[str] = set()
    for sel in selectors(expr):
        nm = sel.name_matcher()
        if nm and nm[0] == "=":
            names.add(nm[1])
    return names


def selector_matches(selector: str, metric: str) -> bool:
    """Whether the series selector ``selector`` (e.g. a ``match[]``) can select ``metric``.

    Only the ``__name__`` constraint is decided; other matchers are assumed satisfiable.
    """
    parsed = selectors(selector)
    if len(parsed) != 1:
        return False
    nm = parsed[0].name_matcher()
    if nm is None:
        return True
    op, value = nm
    if op == "=":
        return metric == value
    if op == "!=":
        return metric != value
    try:
        hit = re.fullmatch(value, metric) is not None  # Prometheus regexes are anchored
    except re.error:
        return False  # a regex Python cannot read selects nothing here; promtool says why
    return hit if op == "=~" else not hit
