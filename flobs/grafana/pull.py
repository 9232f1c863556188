"""``flobs pull-dashboards``: bring an edit made in the Grafana UI back into files.

For every dashboard of OUT, the one in Grafana is read and compared with it (normalized
like a push compares). A dashboard still carrying flobs' unedited push marker has nothing
to pull. An edited one is turned into what the inventory can express:

* a dashboard of the user's (``extensions.dashboards_dir``, manifest ``user_files``):
  the edited model, to be written back over its source file;
* one of flobs' own: an **overrides patch** (``extensions.overrides.panels``) for what
  overrides can say — a panel's title, a removed panel (``disable``), the red threshold
  — and, when the edit goes further (a query, a new panel), the edited model as an
  **extra dashboard** under a new uid ``<uid>-edited``, since flobs' uid stays flobs'.

Panels are matched by id (stable in what flobs generates). Layout (``gridPos``) changes
are not pulled: overrides re-flow rows themselves. Core only: no printing, no writing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flobs.docwalk import iter_panels
from flobs.grafana.client import GrafanaClient
from flobs.grafana.push import (
    GRAFANA_OWNED_KEYS,
    DashboardPush,
    LocalDashboard,
    normalize,
    short_diff,
)

EDITED_SUFFIX = "-edited"
_PANEL_IGNORED = frozenset({"gridPos", "title", "fieldConfig", "id"})


class PullState(StrEnum):
    UNCHANGED = "unchanged"  # Grafana has what OUT has
    MISSING = "missing"  # not in Grafana (never pushed)
    BEHIND = "behind"  # Grafana has an older flobs push; push-dashboards updates it
    EDITED = "edited"  # changed in Grafana: something to pull
    LAYOUT = "layout"  # only panel positions differ (overrides re-flow rows): not pulled


@dataclass(frozen=True)
class PullItem:
    uid: str
    title: str
    state: PullState
    diff: tuple[str, ...] = ()  # local → grafana
    # flobs' dashboards: {panel title as flobs ships it: {"title"|"disable"|"threshold": …}}
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    not_expressible: tuple[str, ...] = ()  # what overrides cannot say
    # What to write: (path relative to the inventory, model) for a user dashboard, or the
    # extra dashboard that carries what overrides cannot say.
    write: tuple[str, dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "state": self.state.value,
            "diff": list(self.diff),
            "overrides": {k: dict(v) for k, v in self.overrides.items()},
            "not_expressible": list(self.not_expressible),
            "write": self.write[0] if self.write else None,
        }


@dataclass(frozen=True)
class PullResult:
    grafana_url: str
    items: tuple[PullItem, ...]

    @property
    def edited(self) -> list[PullItem]:
        return [i for i in self.items if i.state is PullState.EDITED]

    def overrides_patch(self) -> dict[str, Any]:
        """``extensions.overrides.panels`` for every edited flobs dashboard (may be empty)."""
        panels = {i.uid: dict(i.overrides) for i in self.items if i.overrides}
        return {"extensions": {"overrides": {"panels": panels}}} if panels else {}


def pull(
    client: GrafanaClient,
    dashboards: list[LocalDashboard],
    *,
    user_sources: Mapping[str, str],
    original_titles: Mapping[str, Mapping[int, str]],
    run: DashboardPush,
) -> PullResult:
    """``user_sources``: OUT path → source path (relative to the inventory) of the user's
    dashboards; ``original_titles``: uid → panel id → title as flobs ships it."""
    run.check_health()
    items = []
    for local in dashboards:
        items.append(
            _one(run, local, user_sources.get(local.source), original_titles.get(local.uid, {}))
        )
    return PullResult(client.base_url, tuple(items))


def _one(
    run: DashboardPush, local: LocalDashboard, source: str | None, titles: Mapping[int, str]
) -> PullItem:
    remote = run.get_dashboard(local.uid)
    if remote is None:
        return PullItem(local.uid, local.title, PullState.MISSING)
    model, _meta = remote
    diff = short_diff(local.model, model, limit=40)
    if not diff:
        return PullItem(local.uid, local.title, PullState.UNCHANGED)
    from flobs.grafana.push import ownership

    if ownership(model, run.target_folder) == "owned":
        return PullItem(local.uid, local.title, PullState.BEHIND, diff)
    edited = _clean(model)
    if source is not None:
        return PullItem(local.uid, local.title, PullState.EDITED, diff, write=(source, edited))
    overrides, rest = _overrides(local.model, model, titles)
    if not overrides and not rest:
        return PullItem(local.uid, local.title, PullState.LAYOUT, diff)
    write = None
    if rest:
        copy = {**edited, "uid": local.uid + EDITED_SUFFIX, "title": f"{edited['title']} (edited)"}
        write = (f"{local.uid}{EDITED_SUFFIX}.json", copy)
    return PullItem(
        local.uid, local.title, PullState.EDITED, diff, overrides, tuple(rest), write=write
    )


def _clean(model: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k not in GRAFANA_OWNED_KEYS}


def _panels(model: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["id"]: p for _, p in iter_panels(model) if isinstance(p.get("id"), int)}


def _red_step(panel: dict[str, Any]) -> float | None:
    steps = (((panel.get("fieldConfig") or {}).get("defaults") or {}).get("thresholds") or {}).get(
        "steps"
    ) or []
    if len(steps) < 2 or not isinstance(steps[-1], dict):
        return None
    value = steps[-1].get("value")
    return float(value) if isinstance(value, int | float) else None


def _without_thresholds(panel: dict[str, Any]) -> Any:
    field_config = json.loads(json.dumps(panel.get("fieldConfig") or {}))
    (field_config.get("defaults") or {}).pop("thresholds", None)
    return normalize(field_config)


def _overrides(
    local: dict[str, Any], remote: dict[str, Any], titles: Mapping[int, str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(overrides by flobs panel title, descriptions of what overrides cannot say)."""
    overrides: dict[str, dict[str, Any]] = {}
    rest: list[str] = []
    mine, theirs = _panels(local), _panels(remote)
    for pid, panel in mine.items():
        name = titles.get(pid, str(panel.get("title", "")))
        other = theirs.get(pid)
        if panel.get("type") == "row":
            if other is None or other.get("title") != panel.get("title"):
                rest.append(f"row {panel.get('title')!r} changed or removed")
            continue
        if other is None:
            overrides[name] = {"disable": True}
            continue
        change: dict[str, Any] = {}
        if other.get("title") != panel.get("title"):
            change["title"] = other.get("title")
        red, new_red = _red_step(panel), _red_step(other)
        if red is not None and new_red is not None and red != new_red:
            change["threshold"] = new_red
        elif red != new_red:
            rest.append(f"panel {name!r}: thresholds changed")
        if _without_thresholds(panel) != _without_thresholds(other):
            rest.append(f"panel {name!r}: field config changed")
        strip = {k: v for k, v in panel.items() if k not in _PANEL_IGNORED and k != "panels"}
        strip_other = {k: v for k, v in other.items() if k not in _PANEL_IGNORED and k != "panels"}
        if normalize(strip) != normalize(strip_other):
            rest.append(f"panel {name!r}: queries or options changed")
        if change:
            overrides[name] = change
    for pid in sorted(set(theirs) - set(mine)):
        rest.append(f"new panel {theirs[pid].get('title')!r}")
    top = {k: v for k, v in local.items() if k != "panels"}
    top_other = {k: v for k, v in remote.items() if k != "panels"}
    if normalize(top) != normalize(top_other):
        rest.append("dashboard settings changed (title, variables, time, links…)")
    return overrides, rest
