"""Grafana dashboards: Fleet overview, Host detail, MicroVM detail.

``fleet_files`` writes ``grafana/dashboards/<uid>.json`` (deterministic: sorted keys,
stable panel ids and layout). ``dashboards_markdown`` renders the README's table of
dashboards and panels from the same specs, so the docs cannot drift.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flobs.artifacts.dashboards import fleet as fleet_dashboard
from flobs.artifacts.dashboards import host, microvm
from flobs.artifacts.dashboards.panels import DashboardSpec, View, build
from flobs.artifacts.extensions import apply_panel_overrides
from flobs.model import Fleet

SPECS: tuple[Callable[[View], DashboardSpec], ...] = (
    fleet_dashboard.spec,
    host.spec,
    microvm.spec,
)
DASHBOARD_DIR = "grafana/dashboards"


def specs(view: View | None = None) -> list[DashboardSpec]:
    v = view or View()
    return [make(v) for make in SPECS]


def dashboards(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """uid → dashboard JSON model for ``fleet``."""
    view = View.of(fleet)
    return {s.uid: build(apply_panel_overrides(fleet, s), view) for s in specs(view)}


def dashboard_path(uid: str) -> str:
    return f"{DASHBOARD_DIR}/{uid}.json"


def fleet_files(fleet: Fleet) -> dict[str, bytes]:
    return {
        dashboard_path(uid): (
            json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        ).encode("utf-8")
        for uid, model in dashboards(fleet).items()
    }


# Spec names that differ from the Grafana variable they produce.
_VARIABLE_NAMES = {
    "hosts": "`host` (multi-select, All = every host)",
    "group_by": "`group_by` (the inventory's host label names; `cluster` without any)",
}
_KIND_NAMES = {"promql": "PromQL", "logql": "LogQL", "traceql": "TraceQL"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def dashboards_markdown() -> str:
    """A Markdown table per dashboard: panel title, what it shows, query kind."""
    out: list[str] = []
    for spec in specs():
        out.append(f"### {spec.title} (`{spec.uid}`)\n")
        out.append(f"{spec.description}\n")
        names = [_VARIABLE_NAMES.get(v, f"`{v}`") for v in spec.variables]
        out.append(f"Variables: {', '.join(names)}.\n")
        out.append("| Row | Panel | Shows | Unit | Query |")
        out.append("|---|---|---|---|---|")
        for row in spec.rows:
            for panel in row.panels:
                kinds = sorted({_KIND_NAMES[q.kind] for q in panel.queries})
                out.append(
                    f"| {_cell(row.title)} | {_cell(panel.title)} | {_cell(panel.description)} "
                    f"| `{panel.unit}` | {', '.join(kinds)} |"
                )
        out.append("")
    return "\n".join(out)
