"""One walker per document kind flobs reads back, and the one ``label_values`` grammar.

Checks, the closure, ``verify`` and ``pull`` all read the same documents (Prometheus
rule files, Grafana dashboards). They may be hand-edited or hostile, so every walker
takes any shape and skips what is not the expected kind of node instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

KeyPath = tuple[str | int, ...]


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def iter_rules(doc: Any) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    """(key path, rule) for every rule mapping of a Prometheus rules document."""
    if not isinstance(doc, dict):
        return
    for gi, group in enumerate(_seq(doc.get("groups"))):
        if not isinstance(group, dict):
            continue
        for ri, rule in enumerate(_seq(group.get("rules"))):
            if isinstance(rule, dict):
                yield ("groups", gi, "rules", ri), rule


def iter_panels(dashboard: Any) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    """(key path, panel) for every panel of a dashboard, depth first, in order.

    Rows keep their panels in ``panels`` when collapsed; those are walked too.
    """
    if isinstance(dashboard, dict):
        yield from _panels(dashboard.get("panels"), ())


def _panels(panels: Any, at: KeyPath) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    for i, panel in enumerate(_seq(panels)):
        if isinstance(panel, dict):
            here = (*at, "panels", i)
            yield here, panel
            yield from _panels(panel.get("panels"), here)


# Grafana's Prometheus variable query: label_values(label) or label_values(selector, label).
_LABEL_VALUES = re.compile(
    r"^\s*label_values\((?:(?P<selector>.*),)?\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*$", re.DOTALL
)


def label_values(query: str) -> tuple[str | None, str] | None:
    """(selector or None, label) of a ``label_values(…)`` query; None for anything else."""
    m = _LABEL_VALUES.match(query)
    if m is None:
        return None
    selector = m.group("selector")
    return (selector.strip() if selector is not None else None), m.group("label")
