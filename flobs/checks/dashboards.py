"""Grafana dashboards: ids, layout, datasources, units."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from flobs.checks import Check, CheckContext, FileCheck, register
from flobs.checks import kinds as k
from flobs.problems import Problem, Severity

KeyPath = tuple[str | int, ...]

GRID_COLUMNS = 24  # Grafana's grid is 24 columns wide
# Datasource references Grafana resolves itself.
BUILTIN_DATASOURCES = frozenset({"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"})
# Panels that plot numbers, where a missing unit leaves bytes/seconds/ratios unlabelled.
NUMERIC_PANELS = frozenset({"timeseries", "stat", "gauge", "bargauge", "graph"})


def provisioned_datasources(ctx: CheckContext) -> dict[str, tuple[str, str]]:
    """uid → (type, file) for every datasource in the provisioning files."""
    found: dict[str, tuple[str, str]] = {}
    for path in k.files(ctx, k.DATASOURCES):
        doc = k.data(ctx, path)
        if not isinstance(doc, dict):
            continue
        for ds in k.seq(doc.get("datasources")):
            if isinstance(ds, dict) and isinstance(ds.get("uid"), str):
                found.setdefault(ds["uid"], (str(ds.get("type")), path))
    return found


def datasource_refs(dashboard: Any) -> Iterator[tuple[KeyPath, str]]:
    """(JSON path, uid) for every datasource reference in a dashboard."""
    if not isinstance(dashboard, dict):
        return
    for path, panel in k.iter_panels(dashboard):
        refs: list[tuple[KeyPath, Any]] = [((*path, "datasource"), panel.get("datasource"))]
        for ti, target in enumerate(k.seq(panel.get("targets"))):
            if isinstance(target, dict):
                refs.append(((*path, "targets", ti, "datasource"), target.get("datasource")))
        for key_path, ref in refs:
            uid = ref.get("uid") if isinstance(ref, dict) else ref
            if isinstance(uid, str) and uid:
                yield key_path, uid
    templating = dashboard.get("templating")
    items = templating.get("list") if isinstance(templating, dict) else None
    for i, var in enumerate(k.seq(items)):
        if isinstance(var, dict) and isinstance(var.get("datasource"), dict | str):
            ref = var["datasource"]
            uid = ref.get("uid") if isinstance(ref, dict) else ref
            if isinstance(uid, str) and uid:
                yield ("templating", "list", i, "datasource"), uid


def datasource_variables(dashboard: Any) -> set[str]:
    templating = dashboard.get("templating") if isinstance(dashboard, dict) else None
    items = templating.get("list") if isinstance(templating, dict) else None
    if not isinstance(items, list):
        return set()
    return {
        str(v.get("name"))
        for v in items or []
        if isinstance(v, dict) and v.get("type") == "datasource"
    }


def _variable_name(uid: str) -> str | None:
    if uid.startswith("${") and uid.endswith("}"):
        return uid[2:-1].split(":")[0]
    if uid.startswith("$"):
        return uid[1:]
    return None


@register
class PanelIdsUnique(FileCheck):
    """Every panel of a dashboard has an id, and no two panels share one.

    Why: Grafana keys panel state, links (`viewPanel=`) and library panels by id; with
    duplicates, editing one panel changes or hides the other. Example: two panels with
    `"id": 3` (rows' nested panels included).
    """

    ID = "dash-panel-ids"
    TITLE = "unique panel ids"
    FILES: ClassVar[tuple[str, ...]] = k.DASHBOARDS

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        seen: dict[int, KeyPath] = {}
        for key_path, panel in k.iter_panels(k.data(ctx, path)):
            pid = panel.get("id")
            if not isinstance(pid, int):
                yield ctx.problem(
                    self, path, f"panel {panel.get('title')!r} has no id", key_path=key_path
                )
            elif pid in seen:
                yield ctx.problem(
                    self,
                    path,
                    f"panel id {pid} is used twice (panel {panel.get('title')!r})",
                    key_path=(*key_path, "id"),
                )
            else:
                seen[pid] = key_path


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def _grid(panel: dict[str, Any]) -> dict[str, int] | None:
    g = panel.get("gridPos")
    if isinstance(g, dict) and all(isinstance(g.get(x), int) for x in "xywh"):
        return {x: int(g[x]) for x in "xywh"}
    return None


@register
class GridNoOverlap(FileCheck):
    """Panels do not overlap and fit the 24-column grid.

    Why: Grafana pushes overlapping panels around when it loads the dashboard, so the
    layout on screen is not the one generated (and a save rewrites it). Collapsed rows'
    panels are checked among themselves. Example: two panels both at `x: 0, y: 0`.
    """

    ID = "dash-gridpos"
    TITLE = "no overlapping panels"
    FILES: ClassVar[tuple[str, ...]] = k.DASHBOARDS

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        dashboard = k.data(ctx, path)
        if not isinstance(dashboard, dict):
            return
        top = [
            (("panels", i), p)
            for i, p in enumerate(k.seq(dashboard.get("panels")))
            if isinstance(p, dict)
        ]
        layers: list[list[tuple[KeyPath, dict[str, Any]]]] = [list(top)]
        for key_path, panel in top:
            if panel.get("type") == "row" and panel.get("panels"):
                layers.append(
                    [
                        ((*key_path, "panels", j), c)
                        for j, c in enumerate(k.seq(panel["panels"]))
                        if isinstance(c, dict)
                    ]
                )
        for layer in layers:
            yield from self._layer(ctx, path, layer)

    def _layer(
        self, ctx: CheckContext, path: str, panels: list[tuple[KeyPath, dict[str, Any]]]
    ) -> Iterator[Problem]:
        placed: list[tuple[dict[str, int], dict[str, Any]]] = []
        for key_path, panel in panels:
            grid = _grid(panel)
            if grid is None:
                continue
            if grid["x"] + grid["w"] > GRID_COLUMNS:
                yield ctx.problem(
                    self,
                    path,
                    f"panel {panel.get('title')!r} ends at column "
                    f"{grid['x'] + grid['w']}, past the {GRID_COLUMNS}-column grid",
                    key_path=(*key_path, "gridPos"),
                )
            for other_grid, other in placed:
                if _overlaps(grid, other_grid):
                    yield ctx.problem(
                        self,
                        path,
                        f"panel {panel.get('title')!r} (id "
                        f"{panel.get('id')}) overlaps panel {other.get('title')!r} "
                        f"(id {other.get('id')})",
                        key_path=(*key_path, "gridPos"),
                    )
                    break
            placed.append((grid, panel))


@register
class DatasourcesResolve(Check):
    """Every datasource uid a dashboard uses is provisioned (or is a datasource variable).

    Why: a panel whose datasource uid Grafana does not know shows "datasource not
    found" on every graph. The uids must match `grafana/provisioning/datasources/*.yaml`.
    Example: `"datasource": {"type": "prometheus", "uid": "prom-old"}` when the
    provisioned Prometheus has uid `flobs-prometheus`.
    """

    ID = "dash-datasource"
    TITLE = "datasource uids resolve"
    FILES: ClassVar[tuple[str, ...]] = k.DASHBOARDS

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        dashboards = k.files(ctx, k.DASHBOARDS)
        if not dashboards:
            return
        known = provisioned_datasources(ctx)
        for path in dashboards:
            dashboard = k.data(ctx, path)
            variables = datasource_variables(dashboard)
            reported: set[str] = set()
            for key_path, uid in datasource_refs(dashboard):
                if uid in BUILTIN_DATASOURCES or uid in known or uid in reported:
                    continue
                var = _variable_name(uid)
                if var is not None:
                    if var in variables:
                        continue
                    message = f"datasource {uid!r} names no datasource variable of this dashboard"
                else:
                    message = f"datasource uid {uid!r} is not provisioned"
                reported.add(uid)
                yield ctx.problem(
                    self,
                    path,
                    message,
                    key_path=key_path,
                    hint=f"provisioned uids: {', '.join(sorted(known)) or 'none'}",
                )


@register
class UnitsSet(FileCheck):
    """Numeric panels (time series, stat, gauge, bar gauge) set a unit.

    Why: without a unit, 1.2e9 bytes/s and 0.93 (a ratio) read the same, and people
    misjudge load at 3 a.m. Example: a time series of
    `microvm:firecracker_net_rx_bytes_count:per_second` without `"unit": "Bps"`.
    """

    ID = "dash-units"
    TITLE = "numeric panels set a unit"
    SEVERITY = Severity.WARNING
    FILES: ClassVar[tuple[str, ...]] = k.DASHBOARDS

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        for key_path, panel in k.iter_panels(k.data(ctx, path)):
            if not isinstance(panel.get("type"), str) or panel["type"] not in NUMERIC_PANELS:
                continue
            fc = panel.get("fieldConfig")
            defaults = fc.get("defaults") if isinstance(fc, dict) else None
            unit = defaults.get("unit") if isinstance(defaults, dict) else None
            if not unit:
                yield ctx.problem(
                    self,
                    path,
                    f"panel {panel.get('title')!r} sets no unit",
                    key_path=key_path,
                    hint="set fieldConfig.defaults.unit (e.g. bytes, s, percentunit, reqps)",
                )
