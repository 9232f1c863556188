"""What the inventory's extension points add to the tree, and how they change flobs' own.

* ``extra_scrape_configs(host)``: the host's extra scrape jobs (vars.extra_scrape_jobs),
  appended to its local Prometheus' scrape_configs;
* ``federation_selectors(fleet)`` / ``federated_names(fleet)``: how their series reach the
  centre (a ``match[]`` selector per job, or names for the remote_write keep rule);
* ``fleet_files(fleet)``: the user's rules, rule tests and dashboards, as given (checked
  when the inventory was loaded);
* ``apply_panel_overrides`` / ``apply_alert_overrides``: overrides of what flobs ships;
* ``manifest_extra(fleet)``: what ``manifest.json`` records so that ``flobs validate``
  works from OUT alone: which files the user owns, what extra jobs produce, the
  validation settings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flobs.model import Fleet, Host, HostScope

if TYPE_CHECKING:
    from flobs.artifacts.central_rules import Alert
    from flobs.artifacts.dashboards.panels import DashboardSpec


def extra_scrape_configs(host: Host) -> list[dict[str, Any]]:
    return [job.config for job in host.vars.extra_scrape_jobs]


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def extra_jobs_produce(fleet: Fleet) -> dict[str, list[str]]:
    """job name → the metric-name regexes it sends to the centre, over every host."""
    return {job: list(names) for job, names in fleet.host_scope.extra_jobs_produce}


def federation_selectors(fleet: Fleet) -> list[str]:
    """One ``match[]`` selector per federated name of an extra job, scoped to the job."""
    return [
        f"{{__name__=~{_quote(name)},job={_quote(job)}}}"
        for job, names in extra_jobs_produce(fleet).items()
        for name in names
    ]


def federated_names(scope: HostScope) -> list[str]:
    """Name regexes for the remote_write keep rule (it can only look at ``__name__``)."""
    return [name for _job, names in scope.extra_jobs_produce for name in names]


def fleet_files(fleet: Fleet) -> dict[str, bytes]:
    return {f.path: f.data for f in fleet.extensions.user_files}


def apply_panel_overrides(fleet: Fleet, spec: DashboardSpec) -> DashboardSpec:
    ext = fleet.extensions
    if not any(o.dashboard == spec.uid for o in ext.panel_overrides):
        return spec
    rows = []
    number = 0  # panels.build's numbering, kept for every panel that stays
    for row in spec.rows:
        number += 1
        row_id = number
        panels = []
        for panel in row.panels:
            number += 1
            panel = replace(panel, id=number)
            o = ext.panel_override(spec.uid, panel.title)
            if o is None:
                panels.append(panel)
                continue
            if o.disable:
                continue
            if o.title is not None:
                panel = replace(panel, title=o.title)
            if o.threshold is not None and panel.thresholds:
                # The last step is the red alert line (panels.PanelSpec.thresholds).
                *rest, (_old, colour) = panel.thresholds
                panel = replace(panel, thresholds=(*rest, (o.threshold, colour)))
            panels.append(panel)
        if panels:
            rows.append(replace(row, panels=_fill_grid(tuple(panels), row.panels), id=row_id))
    return replace(spec, rows=tuple(rows))


def _fill_grid(panels: tuple[Any, ...], original: Sequence[Any]) -> tuple[Any, ...]:
    """A disabled panel leaves a gap in its grid line; widen that line's last panel."""
    if len(panels) == len(original):
        return panels
    grid = 24
    out: list[Any] = []
    line = 0  # width used on the current grid line
    for panel in panels:
        if line and line + panel.width > grid:
            out[-1] = replace(out[-1], width=out[-1].width + grid - line)
            line = 0
        out.append(panel)
        line = (line + panel.width) % grid
    if line:
        out[-1] = replace(out[-1], width=out[-1].width + grid - line)
    return tuple(out)


def apply_alert_overrides(fleet: Fleet, alerts: list[Alert]) -> list[Alert]:
    """Drop disabled alerts (their tests go with them) and set severities.

    ``for`` and thresholds are not changed here: ``central_rules.alerts`` builds each
    alert from them, so its promtool cases follow the new values.
    """
    ext = fleet.extensions
    out = []
    for alert in alerts:
        o = ext.alert_override(alert.name)
        if o is not None and o.disable:
            continue
        if o is not None and o.severity is not None:
            alert = replace(alert, severity=o.severity)
        out.append(alert)
    return out


def manifest_extra(fleet: Fleet) -> dict[str, Any]:
    """Keys of manifest.json beyond the file list (read by validate, closure and coverage)."""
    ext = fleet.extensions
    v = ext.validation
    extra: dict[str, Any] = {}
    if ext.user_files:
        # Discoverable by other checks: `manifest["user_files"][path]["origin"] == "user"`.
        extra["user_files"] = {
            f.path: {"origin": "user", "kind": f.kind, "source": f.source}
            for f in sorted(ext.user_files, key=lambda f: f.path)
        }
    produce = extra_jobs_produce(fleet)
    if produce:
        extra["extra_jobs"] = produce
    if v.disable or v.ignore or v.unmanaged:
        extra["validation"] = {
            "disable": list(v.disable),
            "ignore": [{"path": p, "checks": list(c)} for p, c in v.ignore],
            "unmanaged": list(v.unmanaged),
        }
    return extra


def original_panel_titles() -> dict[str, dict[int, str]]:
    """uid → panel id in the generated JSON → the panel's title as flobs ships it.

    Overrides are keyed by the shipped title; a pulled edit must be keyed the same way,
    even when an override renamed the panel. Ids do not move when a panel is disabled
    (``apply_panel_overrides``), so the numbering of the shipped spec applies.
    """
    from flobs.artifacts.dashboards import specs

    out: dict[str, dict[int, str]] = {}
    for spec in specs():
        ids: dict[int, str] = {}
        number = 0
        for row in spec.rows:
            number += 1
            for panel in row.panels:
                number += 1
                ids[number] = panel.title
        out[spec.uid] = ids
    return out
