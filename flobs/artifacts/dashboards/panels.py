"""Dashboards as data, and the builders that turn that data into Grafana JSON.

A dashboard is first a :class:`DashboardSpec` (rows of :class:`PanelSpec`, each with
its queries); :func:`build` renders it with grafana-foundation-sdk's typed builders.
Keeping the spec apart lets the README table, the closure check and the tests read
the very panels that are generated.

Conventions every dashboard follows:

* Prometheus panels query the central Prometheus through the ``datasource``
  variable (``${datasource}``); Loki and Tempo panels use the provisioned uids.
* ``cluster`` is single-valued, so every LogQL selector has one non-empty matcher;
  ``host`` uses ``.+`` as its "All" value, which reads well in PromQL and LogQL.
* Firecracker series are read only through the hosts' ``microvm:*:per_second`` and
  ``:sum`` recording rules: their values are per-flush deltas and must never be
  ``rate()``d (flintlock-facts.md). Cloud Hypervisor rates come from ``:rate5m`` rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import (
    common as common_b,
)
from grafana_foundation_sdk.builders import (
    dashboard as dash_b,
)
from grafana_foundation_sdk.builders import (
    logs,
    loki,
    prometheus,
    stat,
    table,
    tempo,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import tempo as tempo_m

from flobs.model import (
    LOGS_DATASOURCE_TYPES,
    TRACES_DATASOURCE_TYPES,
    Fleet,
    LogsBackend,
    TracesBackend,
)
from flobs.promtime import seconds

SERVICE_NAME = "flintlockd"  # the service.name of flintlockd's spans (flobs.sim, otelcol)

QueryKind = Literal["promql", "logql", "traceql"]
PanelKind = Literal["timeseries", "stat", "table", "logs", "traces"]

TAG = "flobs"
GRID_WIDTH = 24
# Grafana's logrus levels worth a look at 3 a.m.
ERROR_LEVELS = "error|fatal|panic"


@dataclass(frozen=True)
class Query:
    kind: QueryKind
    expr: str
    legend: str = ""
    instant: bool = False
    # The same question for the other backends: LogsQL for VictoriaLogs (a `| stats`
    # query is drawn as a time series), Jaeger search tags (logfmt) for Jaeger.
    logsql: str = ""
    jaeger_tags: str = ""


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    unit: str
    kind: PanelKind
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    # (value, colour) steps after the base green; e.g. the alert threshold in red.
    thresholds: tuple[tuple[float, str], ...] = ()
    min: float | None = None
    max: float | None = None
    links: tuple[tuple[str, str], ...] = ()  # (title, url) data links
    # Set by overrides (artifacts.extensions): a disabled panel must not renumber the
    # others, or a dashboard edited in Grafana could not be matched panel by panel.
    id: int | None = None


@dataclass(frozen=True)
class RowSpec:
    title: str
    panels: tuple[PanelSpec, ...]
    id: int | None = None  # see PanelSpec.id


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    variables: tuple[str, ...]  # names, from VARIABLES, in display order
    rows: tuple[RowSpec, ...]

    def panels(self) -> list[PanelSpec]:
        return [p for row in self.rows for p in row.panels]


@dataclass(frozen=True)
class View:
    """What of the fleet a dashboard depends on (and defaults for the docs table)."""

    host_up: str = 'up{job="federate"}'  # central_rules.host_up_selector
    grpc_error_ratio: float = 0.05
    prometheus_uid: str = "flobs-prometheus"
    prometheus_name: str = "flobs-prometheus"
    logs_uid: str = "flobs-loki"
    traces_uid: str = "flobs-tempo"
    logs_backend: LogsBackend = "loki"
    traces_backend: TracesBackend = "tempo"
    cluster: str = ""
    # central.alerts as set for this fleet (schema defaults for the docs table), so
    # panels draw the same threshold their alert uses.
    alert_settings: tuple[tuple[str, str | float], ...] = ()
    hosts: int = 1
    scrape_timeout: float = 25.0  # the central's, for FlobsFederationSlow
    host_silence: str = "60s"  # central_rules.remote_write_silence
    # The inventory's host label names (group + host labels), the one most hosts carry
    # first: the fleet dashboard groups hosts by the fleet's own labels, not by a
    # name flobs would have to guess.
    group_labels: tuple[str, ...] = ()

    def alert(self, key: str) -> float:
        from flobs.inventory.build import ALERT_DEFAULTS

        return float(dict(self.alert_settings).get(key, ALERT_DEFAULTS[key]))

    @property
    def federation(self) -> bool:
        return "federate" in self.host_up

    @classmethod
    def of(cls, fleet: Fleet) -> View:
        from flobs.artifacts.central_rules import host_up_selector, remote_write_silence

        g = fleet.central.grafana
        # The red line is the alert's threshold, also when an override moved it.
        o = fleet.extensions.alert_override("FlintlockdGrpcErrors")
        ratio = o.threshold if o is not None and o.threshold is not None else None
        return cls(
            host_up=host_up_selector(fleet),
            grpc_error_ratio=ratio or float(fleet.central.alerts.get("grpc_error_ratio")),
            prometheus_uid=g.prometheus.uid,
            prometheus_name=g.prometheus.name,
            logs_uid=g.logs.uid,
            traces_uid=g.traces.uid,
            logs_backend=fleet.central.logs.backend,
            traces_backend=fleet.central.traces.backend,
            cluster=fleet.cluster,
            alert_settings=fleet.central.alerts.values,
            hosts=max(1, len(fleet.hosts)),
            scrape_timeout=seconds(fleet.central.prometheus.scrape_timeout),
            host_silence=remote_write_silence(fleet),
            group_labels=group_labels(fleet),
        )

    @property
    def group_by_options(self) -> tuple[str, ...]:
        """What the fleet dashboard can group hosts by: the inventory's host labels, or
        ``cluster`` (the fleet's totals) when its hosts carry none."""
        return self.group_labels or ("cluster",)

    def host_up_where(self, matchers: str) -> str:
        """The host-up selector with extra label matchers, e.g. ``cluster="$cluster"``."""
        base = self.host_up
        return f"{base[:-1]}, {matchers}}}"


def group_labels(fleet: Fleet) -> tuple[str, ...]:
    """Host label names of the inventory: carried by most hosts first, then by name."""
    carriers: dict[str, int] = {}
    for host in fleet.hosts:
        for name, _ in host.labels:
            carriers[name] = carriers.get(name, 0) + 1
    return tuple(sorted(carriers, key=lambda name: (-carriers[name], name)))


# --------------------------------------------------------------------------- queries


def promql(expr: str, legend: str = "", *, instant: bool = False) -> Query:
    return Query("promql", expr, legend, instant)


def logql(expr: str, legend: str = "", *, logsql: str) -> Query:
    """A log query: LogQL for Loki and the same question in LogsQL for VictoriaLogs."""
    return Query("logql", expr, legend, logsql=logsql)


def traceql(expr: str, *, jaeger_tags: str) -> Query:
    """A trace search: TraceQL for Tempo, service flintlockd + tags for Jaeger."""
    return Query("traceql", expr, jaeger_tags=jaeger_tags)


class _RawTarget:
    """A panel target the SDK has no builder for (the VictoriaLogs plugin's query)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def build(self) -> dict[str, Any]:
        return self.data


def _logs_ref(view: View) -> dash_m.DataSourceRef:
    return dash_m.DataSourceRef(
        type_val=LOGS_DATASOURCE_TYPES[view.logs_backend], uid=view.logs_uid
    )


def _traces_ref(view: View) -> dash_m.DataSourceRef:
    return dash_m.DataSourceRef(
        type_val=TRACES_DATASOURCE_TYPES[view.traces_backend], uid=view.traces_uid
    )


# Label matchers every panel of a dashboard repeats.
HOSTS = 'cluster="$cluster", host=~"$host"'  # the fleet dashboard: many hosts
HOST = 'cluster="$cluster", host="$host"'  # host and microVM dashboards: one host
MICROVM = 'cluster="$cluster", host="$host", namespace="$namespace", name="$name"'

HOST_LINK = (
    "Host detail",
    "/d/flobs-host?var-cluster=${cluster}&var-host=${__field.labels.host}&${__url_time_range}",
)
MICROVM_LINK = (
    "MicroVM detail",
    "/d/flobs-microvm?var-cluster=${cluster}&var-host=${__field.labels.host}"
    "&var-namespace=${__field.labels.namespace}&var-name=${__field.labels.name}"
    "&${__url_time_range}",
)


# --------------------------------------------------------------------------- variables


def _variables(view: View, names: tuple[str, ...]) -> list[Any]:
    prom = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")
    microvm_series = '{__name__=~"microvm:.+", cluster="$cluster", host="$host"}'
    out: dict[str, Any] = {
        "datasource": dash_b.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
        .description("The central Prometheus (federated host series and central rules).")
        .current(
            dash_m.VariableOption(
                selected=True, text=view.prometheus_name, value=view.prometheus_uid
            )
        ),
        "cluster": dash_b.QueryVariable("cluster")
        .label("Cluster")
        .description("The inventory's cluster (the `cluster` label).")
        .datasource(prom)
        .query("label_values(up, cluster)")
        # Preselect the inventory's cluster; Grafana still lists every cluster it finds.
        .current(dash_m.VariableOption(selected=True, text=view.cluster, value=view.cluster))
        .refresh(dash_m.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC),
        "hosts": dash_b.QueryVariable("host")
        .label("Host")
        .description("Flintlock hosts; All matches every host of the cluster.")
        .datasource(prom)
        .query('label_values(up{cluster="$cluster"}, host)')
        .refresh(dash_m.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dash_m.VariableSort.NATURAL_ASC)
        .multi(True)
        .include_all(True)
        # `.+` instead of a 1,000-host alternation; LogQL keeps `cluster` non-empty.
        .all_value(".+"),
        "host": dash_b.QueryVariable("host")
        .label("Host")
        .description("One Flintlock host.")
        .datasource(prom)
        .query('label_values(up{cluster="$cluster"}, host)')
        .refresh(dash_m.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dash_m.VariableSort.NATURAL_ASC),
        "namespace": dash_b.QueryVariable("namespace")
        .label("Namespace")
        .description("The microVM's namespace (flintlock-metrics `namespace` label).")
        .datasource(prom)
        .query(f"label_values({microvm_series}, namespace)")
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.NATURAL_ASC),
        "name": dash_b.QueryVariable("name")
        .label("MicroVM")
        .description("The microVM's name.")
        .datasource(prom)
        .query(
            'label_values({__name__=~"microvm:.+", cluster="$cluster", host="$host", '
            'namespace="$namespace"}, name)'
        )
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.NATURAL_ASC),
    }
    options = view.group_by_options
    out["group_by"] = (
        dash_b.CustomVariable("group_by")
        .label("Group by")
        .description(
            "An inventory host label (group or host `labels`) to group hosts by, the one "
            "most hosts carry first; `cluster` when the hosts carry no labels."
        )
        # Label names match [a-zA-Z_][a-zA-Z0-9_]* (schema), so no comma or escape.
        .values(",".join(options))
        .allow_custom_value(False)
        .current(dash_m.VariableOption(selected=True, text=options[0], value=options[0]))
        .options(
            [
                dash_m.VariableOption(selected=name == options[0], text=name, value=name)
                for name in options
            ]
        )
    )
    return [out[n] for n in names]


# --------------------------------------------------------------------------- panels


def _target(view: View, query: Query, ref_id: str) -> Any:
    if query.kind == "promql":
        q = (
            prometheus.Dataquery()
            .expr(query.expr)
            .ref_id(ref_id)
            .datasource(dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}"))
        )
        if query.legend:
            q = q.legend_format(query.legend)
        return q.instant() if query.instant else q.range()
    if query.kind == "logql" and view.logs_backend == "victorialogs":
        ref = _logs_ref(view)
        raw: dict[str, Any] = {
            "refId": ref_id,
            "datasource": {"type": ref.type_val, "uid": ref.uid},
            "editorMode": "code",
            "expr": query.logsql,
            # `| stats` over time is a range query (/select/logsql/stats_query_range).
            "queryType": "statsRange" if "| stats" in query.logsql else "instant",
        }
        if query.legend:
            raw["legendFormat"] = query.legend
        return _RawTarget(raw)
    if query.kind == "logql":
        lq = loki.Dataquery().expr(query.expr).ref_id(ref_id).datasource(_logs_ref(view))
        return lq.legend_format(query.legend) if query.legend else lq
    if view.traces_backend == "jaeger":
        ref = _traces_ref(view)
        return _RawTarget(
            {
                "refId": ref_id,
                "datasource": {"type": ref.type_val, "uid": ref.uid},
                "queryType": "search",
                "service": SERVICE_NAME,
                "tags": query.jaeger_tags,
                "limit": 20,
            }
        )
    return (
        tempo.TempoQuery()
        .query(query.expr)
        .query_type("traceql")
        .ref_id(ref_id)
        .limit(20)
        .table_type(tempo_m.SearchTableType.TRACES)
        .datasource(_traces_ref(view))
    )


def _panel_datasource(view: View, spec: PanelSpec) -> dash_m.DataSourceRef:
    kind = spec.queries[0].kind
    if kind == "logql":
        return _logs_ref(view)
    if kind == "traceql":
        return _traces_ref(view)
    return dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")


def _thresholds(spec: PanelSpec) -> dash_b.ThresholdsConfig:
    steps = [dash_m.Threshold(value=None, color="green")]
    steps += [dash_m.Threshold(value=v, color=c) for v, c in spec.thresholds]
    return dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE).steps(steps)


def _panel(view: View, spec: PanelSpec, panel_id: int) -> Any:
    builder: Any
    if spec.kind == "timeseries":
        builder = (
            timeseries.Panel()
            .line_width(1)
            .fill_opacity(10)
            .show_points(common_m.VisibilityMode.NEVER)
            .legend(
                common_b.VizLegendOptions()
                .show_legend(True)
                .display_mode(common_m.LegendDisplayMode.LIST)
                .placement(common_m.LegendPlacement.BOTTOM)
            )
            .tooltip(
                common_b.VizTooltipOptions()
                .mode(common_m.TooltipDisplayMode.MULTI)
                .sort(common_m.SortOrder.DESCENDING)
            )
        )
        if spec.thresholds:
            builder = builder.thresholds_style(
                common_b.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.LINE)
            )
    elif spec.kind == "stat":
        builder = (
            stat.Panel()
            .graph_mode(common_m.BigValueGraphMode.AREA)
            # The latest value, not Grafana's guess: these are "now" figures.
            .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]))
        )
    elif spec.kind == "table":
        builder = table.Panel()
    elif spec.kind == "logs":
        builder = (
            logs.Panel()
            .show_time(True)
            .wrap_log_message(True)
            .enable_log_details(True)
            .sort_order(common_m.LogsSortOrder.DESCENDING)
        )
    else:  # traces: Tempo search results as a table
        builder = table.Panel()
    builder = (
        builder.id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .datasource(_panel_datasource(view, spec))
        .height(spec.height)
        .span(spec.width)
        .thresholds(_thresholds(spec))
    )
    if spec.min is not None:
        builder = builder.min(spec.min)
    if spec.max is not None:
        builder = builder.max(spec.max)
    if spec.links:
        builder = builder.data_links(
            [dash_b.DashboardLink(title).url(url) for title, url in spec.links]
        )
    for n, query in enumerate(spec.queries):
        builder = builder.with_target(_target(view, query, chr(ord("A") + n)))
    return builder


# --------------------------------------------------------------------------- dashboards


def build(spec: DashboardSpec, view: View) -> dict[str, Any]:
    """The dashboard JSON model (what a file provider or the API takes)."""
    board = (
        dash_b.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags([TAG])
        .editable()
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .link(
            dash_b.DashboardLink("Flintlock dashboards")
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for variable in _variables(view, spec.variables):
        board = board.with_variable(variable)
    panel_id = 0
    for row in spec.rows:
        if sum(p.width for p in row.panels) % GRID_WIDTH:
            raise ValueError(f"{spec.uid}: row {row.title!r} does not fill whole grid lines")
        panel_id = row.id if row.id is not None else panel_id + 1
        board = board.with_row(dash_b.Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id = panel.id if panel.id is not None else panel_id + 1
            board = board.with_panel(_panel(view, panel, panel_id))
    # JSONEncoder knows the SDK's models; a round trip gives plain, sortable data.
    plain: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    # The SDK gives every variable the interval-only `auto`, `auto_count`, `auto_min`;
    # Grafana's own Dashboard type (@grafana/schema) has them on interval variables only.
    for variable in plain.get("templating", {}).get("list", []):
        if variable.get("type") != "interval":
            for key in INTERVAL_ONLY:
                variable.pop(key, None)
    return plain


INTERVAL_ONLY = ("auto", "auto_count", "auto_min")
