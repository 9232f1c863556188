"""`flobs verify`: does the centre really hold every host's data, and do the queries work?

1. Hosts. In federation mode a host is *present* when the central's federate scrape of
   it is up (``up{job="federate",host=H} == 1``) and flobs' recording series
   (``host:*``, ``microvm:*``) for H are there and fresh. In remote_write mode there is
   no federate job: the host's own ``up`` series (pushed by its local Prometheus) and
   its recording series must be there and fresh. Hosts the centre knows but the
   inventory does not are listed as unexpected.
2. Queries. Every Prometheus target of every dashboard in ``OUT/grafana/dashboards``
   (rows may nest panels; ``$host`` panels run once per host) and every central rule
   expression in ``OUT/central/rules`` runs as an instant query: data, no data, error.

Only missing/stale hosts and query errors fail verification; empty panels and agents
that are down (``up == 0`` for promtail, otelcol …) are warnings.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from flobs.docwalk import iter_panels, iter_rules, label_values
from flobs.errors import RemoteError
from flobs.live.alerts import ALERTMANAGER_TIMEOUT, AlertsSeen, alerts_seen
from flobs.live.deep import DeepHost, deep_check
from flobs.live.prometheus_api import PrometheusAPI, QueryFailed
from flobs.live.signals import HostSignals, LogsBackend, TracesBackend, check_host_signals
from flobs.model import LOGS_DATASOURCE_TYPES, TRACES_DATASOURCE_TYPES, Fleet
from flobs.promql import grafana_variables, substitute
from flobs.promtime import seconds

FLOBS_SERIES = '{__name__=~"host:.+|microvm:.+"}'

# schemas/verify-report.schema.json; bump when a field is removed or changes meaning.
REPORT_VERSION = 1

HostState = Literal["present", "missing", "stale", "unreachable"]
Outcome = Literal["data", "partial", "no data", "error", "skipped"]


@dataclass(frozen=True)
class HostStatus:
    name: str
    state: HostState
    series: int  # flobs recording series the centre holds for the host
    age_seconds: float | None  # how old the newest of them is
    detail: str


@dataclass(frozen=True)
class QueryCheck:
    kind: Literal["panel", "recording", "alert"]
    source: str  # dashboard title or rule file
    title: str  # panel title (+ target refId) or rule name
    expr: str
    outcome: Outcome
    detail: str = ""
    hosts_without_data: tuple[str, ...] = ()


@dataclass(frozen=True)
class PanelCheck:
    """One dashboard panel: data when every query has data (for every host it runs
    for), no data when none has, partial in between; error when any query fails;
    skipped when none of its queries is a Prometheus query."""

    dashboard: str
    title: str
    outcome: Outcome
    queries: tuple[QueryCheck, ...]
    hosts_without_data: tuple[str, ...] = ()


def panel_check(dashboard: str, title: str, queries: list[QueryCheck]) -> PanelCheck:
    run = [q for q in queries if q.outcome != "skipped"]
    outcomes = {q.outcome for q in run}
    outcome: Outcome
    if not run:
        outcome = "skipped"
    elif "error" in outcomes:
        outcome = "error"
    elif outcomes == {"data"}:
        outcome = "data"
    elif outcomes == {"no data"}:
        outcome = "no data"
    else:
        outcome = "partial"
    without = sorted({h for q in run for h in q.hosts_without_data})
    return PanelCheck(dashboard, title, outcome, tuple(queries), tuple(without))


@dataclass(frozen=True)
class PanelCounts:
    """The panel numbers every output shows (text, JSON, the demo line)."""

    total: int
    data: int
    partial: int
    no_data: int
    errors: int
    skipped: int


@dataclass
class VerifyReport:
    prometheus: str
    mode: str
    stale_after: float
    hosts: list[HostStatus] = field(default_factory=list)
    unexpected_hosts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    panels: list[PanelCheck] = field(default_factory=list)
    queries: list[QueryCheck] = field(default_factory=list)  # central rule expressions
    alerts: AlertsSeen | None = None
    signals: list[HostSignals] = field(default_factory=list)  # logs and traces, when asked
    signal_backends: dict[str, str] = field(default_factory=dict)  # signal → "Kind URL"
    deep: list[DeepHost] | None = None  # --deep: aggregates equal the hosts' own values
    notes: list[str] = field(default_factory=list)

    @property
    def failed_hosts(self) -> list[HostStatus]:
        return [h for h in self.hosts if h.state != "present"]

    @property
    def query_errors(self) -> list[QueryCheck]:
        panel_queries = [q for p in self.panels for q in p.queries]
        return [q for q in panel_queries + self.queries if q.outcome == "error"]

    @property
    def lost_signals(self) -> list[HostSignals]:
        return [s for s in self.signals if s.lost]

    @property
    def deep_failures(self) -> list[DeepHost]:
        return [d for d in self.deep or [] if not d.ok]

    @property
    def ok(self) -> bool:
        return not (
            self.failed_hosts or self.query_errors or self.lost_signals or self.deep_failures
        )

    def panels_with(self, *outcomes: Outcome) -> list[PanelCheck]:
        return [p for p in self.panels if p.outcome in outcomes]

    def panel_counts(self) -> PanelCounts:
        by = [p.outcome for p in self.panels]
        return PanelCounts(
            len(by),
            by.count("data"),
            by.count("partial"),
            by.count("no data"),
            by.count("error"),
            by.count("skipped"),
        )

    def to_json(self) -> str:
        doc = {"report_version": REPORT_VERSION, "generator": "flobs", **asdict(self)}
        doc["ok"] = self.ok
        counts = self.panel_counts()
        doc["summary"] = {
            "hosts": len(self.hosts),
            "present": len(self.hosts) - len(self.failed_hosts),
            "query_errors": len(self.query_errors),
            "hosts_losing_signals": len(self.lost_signals),
            "deep_mismatched_hosts": len(self.deep_failures),
            "panels": asdict(counts),
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def default_stale_after(fleet: Fleet) -> float:
    """How old a host's newest series may be before it counts as stale.

    New samples reach the centre every evaluation interval on the host (recording
    rules) plus one federation scrape; three of the longest is generous. remote_write
    adds its batch deadline (5 s) and the store's own visibility delay (VictoriaMetrics
    hides the newest 30 s by default, ``-search.latencyOffset``).
    """
    p = fleet.central.prometheus
    longest = max(
        [seconds(p.scrape_interval)]
        + [seconds(h.vars.evaluation_interval) for h in fleet.hosts]
        + [seconds(h.vars.scrape_interval) for h in fleet.hosts]
    )
    slack = 60.0 if p.mode == "remote_write" else 0.0
    return max(15.0, 3 * longest) + slack


def _by_host(samples: list[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in samples:
        host = s.labels.get("host")
        if host is not None:
            out[host] = s.value
    return out


_METRIC_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
# Flobs recording series are few per host, but share their labels across names.
NAMES_PER_QUERY = 25


def freshness_query(names: list[str]) -> str:
    """Age in seconds, per host, of the newest sample of any of ``names``.

    ``timestamp()`` gives a sample's own time only when its argument is a plain vector
    selector; around any other expression (``label_replace``, a function, an
    aggregation) it returns the evaluation time, so the age would always read 0 on
    Prometheus. And it drops the metric name, so one selector matching several names
    fails with duplicate label sets on Prometheus 2.x. So: one selector per name, each
    reduced to one sample per host, labelled apart so the outer ``max`` can see them all.
    The same shape works on Prometheus 2.42, 3.x and VictoriaMetrics.
    """
    parts = [
        f'label_replace(max by (host) (timestamp({{__name__="{name}"}})), '
        f'"flobs_series", "{i}", "", "")'
        for i, name in enumerate(names)
    ]
    return f"time() - max by (host) ({' or '.join(parts)})"


def newest_ages(api: PrometheusAPI, names: list[str]) -> dict[str, float]:
    """host → age of its newest sample among ``names`` (real sample timestamps)."""
    ages: dict[str, float] = {}
    for start in range(0, len(names), NAMES_PER_QUERY):
        chunk = names[start : start + NAMES_PER_QUERY]
        for host, age in _by_host(api.query(freshness_query(chunk))).items():
            ages[host] = min(age, ages.get(host, age))
    return ages


def check_hosts(fleet: Fleet, api: PrometheusAPI, report: VerifyReport) -> None:
    mode = fleet.central.prometheus.mode
    counts = _by_host(api.query(f"count by (host) ({FLOBS_SERIES})"))
    listed = api.query(f"count by (__name__) ({FLOBS_SERIES})")
    # Only well-formed names go back into a query (the answer is the server's word).
    names = sorted({n for s in listed if _METRIC_NAME.match(n := s.labels.get("__name__", ""))})
    ages = newest_ages(api, names)
    if mode == "federation":
        ups = _by_host(api.query('max by (host) (up{job="federate"})'))
    else:
        ups = _by_host(api.query("max by (host) (up)"))
    errors = api.federation_errors() if mode == "federation" else {}
    inventory = {h.name for h in fleet.hosts}
    for host in fleet.hosts:
        name = host.name
        count, age = int(counts.get(name, 0)), ages.get(name)
        state: HostState = "present"
        if mode == "federation" and ups.get(name) == 0:
            state = "unreachable"
            detail = f"the central cannot federate {host.federation_target}"
            if errors.get(name):
                detail += f": {errors[name]}"
        elif mode == "federation" and name not in ups:
            state = "missing"
            detail = (
                "no federate target for it: is it in central/targets/*.json "
                "and the central config current?"
            )
        elif mode == "remote_write" and name not in ups:
            state = "missing"
            detail = (
                "no `up` series with this host label: its local Prometheus does not "
                "remote_write here"
            )
        elif count == 0:
            state = "missing"
            detail = "no flobs recording series (host:*, microvm:*) for it"
        elif age is not None and age > report.stale_after:
            state = "stale"
            detail = f"newest flobs series is {age:.0f}s old (limit {report.stale_after:.0f}s)"
        else:
            detail = f"{count} flobs series" + (
                f", newest {age:.1f}s old" if age is not None else ""
            )
        report.hosts.append(HostStatus(name, state, count, age, detail))
    seen = set(counts) | set(ups)
    report.unexpected_hosts = sorted(seen - inventory)
    # Agents that are down are worth knowing, but not a missing host (e.g. no log
    # shipper installed yet). Federation carries each host's `up`, remote_write too.
    down = api.query('up{job!="federate"} == 0')
    for s in sorted(down, key=lambda s: (s.labels.get("host", ""), s.labels.get("job", ""))):
        if s.labels.get("host") in inventory:
            report.warnings.append(
                f"{s.labels['host']}: job {s.labels.get('job', '?')} is down (up == 0)"
            )


# -- dashboards and rules ----------------------------------------------------------------


@dataclass(frozen=True)
class TemplateVar:
    """A dashboard variable, resolved the way Grafana does when the dashboard opens."""

    name: str
    query: str  # e.g. label_values(up{cluster="$cluster"}, host); "" when not a query
    current: str  # the saved value, or the all-value
    multi_all: bool  # multi/includeAll: a regex of every value is what Grafana sends


@dataclass(frozen=True)
class _Target:
    dashboard: str
    panel: str  # title [refId]
    panel_key: tuple[str, int]  # (dashboard file, panel's place in it): one panel, many targets
    panel_title: str
    expr: str
    datasource: str  # "prometheus" | "loki" | "tempo" | other type/uid
    variables: tuple[TemplateVar, ...]


def _template(dashboard: dict[str, Any]) -> tuple[tuple[TemplateVar, ...], dict[str, str]]:
    """(variables in dashboard order, datasource variable → datasource type)."""
    out: list[TemplateVar] = []
    ds_vars: dict[str, str] = {}
    for var in (dashboard.get("templating") or {}).get("list") or []:
        name = var.get("name")
        if not name:
            continue
        if var.get("type") == "datasource":
            ds_vars[name] = str(var.get("query") or "")
            continue
        query = var.get("query")
        if isinstance(query, dict):  # newer Grafana stores {"query": "...", "refId": ...}
            query = query.get("query")
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(str(c) for c in current)
        if current in (None, "", "$__all"):
            current = var.get("allValue") or ".*"
        multi_all = bool(var.get("multi") or var.get("includeAll"))
        is_query = var.get("type") == "query" and isinstance(query, str)
        out.append(TemplateVar(name, str(query) if is_query else "", str(current), multi_all))
    return tuple(out), ds_vars


def resolve_variables(
    api: PrometheusAPI, fleet: Fleet, variables: tuple[TemplateVar, ...], host: str | None
) -> dict[str, str]:
    """Values for every variable: cluster and host fixed, the rest from label_values().

    Like Grafana, a single-value variable takes its first value; a multi/all one the
    regex of all of them.
    """
    values = {"cluster": fleet.cluster}
    if host is not None:
        values["host"] = host
    for var in variables:
        if var.name in values:
            continue
        parsed = label_values(var.query) if var.query else None
        if parsed is None:
            values[var.name] = var.current
            continue
        selector = substitute(parsed[0] or "up", values, default=".*")
        label = parsed[1]
        try:
            found = sorted(
                {
                    s.labels[label]
                    for s in api.query(f"group by ({label}) ({selector})")
                    if label in s.labels
                }
            )
        except QueryFailed:
            found = []
        if not found:
            values[var.name] = ""
        elif var.multi_all:
            values[var.name] = "|".join(re.escape(v) for v in found)
        else:
            values[var.name] = found[0]
    return values


def _depends_on_host(variables: tuple[TemplateVar, ...]) -> set[str]:
    """Names whose value changes with $host (host itself and variables built on it)."""
    dependent = {"host"}
    for var in variables:
        if grafana_variables(var.query) & dependent:
            dependent.add(var.name)
    return dependent


def _datasource_kind(ds: Any, fleet: Fleet, ds_vars: dict[str, str]) -> str:
    g = fleet.central.grafana
    if ds is None:
        return "prometheus"  # Grafana's default datasource; flobs provisions Prometheus
    if isinstance(ds, str):
        uid, kind = ds, ""
    else:
        uid, kind = str(ds.get("uid") or ""), str(ds.get("type") or "")
    names = grafana_variables(uid)
    if names:
        return ds_vars.get(next(iter(names)), kind or "prometheus")
    if uid == g.prometheus.uid or kind == "prometheus":
        return "prometheus"
    if uid == g.logs.uid or kind in LOGS_DATASOURCE_TYPES.values():
        return "loki" if fleet.central.logs.backend == "loki" else "victorialogs"
    if uid == g.traces.uid or kind in TRACES_DATASOURCE_TYPES.values():
        return fleet.central.traces.backend
    return kind or uid


def dashboard_targets(out: Path, fleet: Fleet) -> Iterator[_Target]:
    for path in sorted((out / "grafana" / "dashboards").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        dashboard = doc.get("dashboard", doc) if isinstance(doc, dict) else {}
        title = str(dashboard.get("title") or path.stem)
        variables, ds_vars = _template(dashboard)
        for place, (_, panel) in enumerate(iter_panels(dashboard)):
            panel_title = str(panel.get("title") or f"panel {panel.get('id')}")
            for target in panel.get("targets") or []:
                if not isinstance(target, dict):
                    continue
                expr = target.get("expr") or ""
                ds = target.get("datasource") or panel.get("datasource")
                kind = _datasource_kind(ds, fleet, ds_vars)
                if not expr and kind == "prometheus":
                    continue
                ref = target.get("refId")
                label = panel_title + (f" [{ref}]" if ref else "")
                yield _Target(
                    title,
                    label,
                    (path.name, place),
                    panel_title,
                    str(expr or target.get("query") or ""),
                    kind,
                    variables,
                )


def rule_expressions(out: Path) -> Iterator[tuple[str, str, str, Literal["recording", "alert"]]]:
    """(file, rule name, expr, kind) of every central rule."""
    for path in sorted((out / "central" / "rules").glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for _, rule in iter_rules(doc):
            if "record" in rule:
                yield path.name, str(rule["record"]), str(rule["expr"]), "recording"
            elif "alert" in rule:
                yield path.name, str(rule["alert"]), str(rule["expr"]), "alert"


def _run(api: PrometheusAPI, expr: str) -> tuple[bool | None, str]:
    """(has data, error) — has data is None on error."""
    try:
        return bool(api.query(expr)), ""
    except QueryFailed as err:
        return None, str(err)


Resolved = dict[tuple[str, str | None], dict[str, str]]


def check_panel(
    api: PrometheusAPI, panel_hosts: list[str], target: _Target, resolved: Resolved
) -> QueryCheck:
    def result(
        outcome: Outcome, expr: str, detail: str = "", without: tuple[str, ...] = ()
    ) -> QueryCheck:
        return QueryCheck("panel", target.dashboard, target.panel, expr, outcome, detail, without)

    if target.datasource != "prometheus":
        return result("skipped", target.expr, f"{target.datasource} datasource")
    per_host = bool(grafana_variables(target.expr) & _depends_on_host(target.variables))
    hosts: list[str | None] = list(panel_hosts) if per_host else [None]
    without: list[str] = []
    for host in hosts:
        expr = substitute(target.expr, resolved[(target.dashboard, host)], default=".*")
        has_data, error = _run(api, expr)
        if has_data is None:
            return result("error", expr, error)
        if not has_data and host is None:
            return result("no data", expr)
        if not has_data and host is not None:
            without.append(host)
    if per_host and len(without) == len(hosts):
        return result("no data", target.expr, "no data for any host", tuple(without))
    if without:
        return result(
            "partial", target.expr, f"no data for {len(without)}/{len(hosts)} hosts", tuple(without)
        )
    return result("data", target.expr, f"per host, {len(hosts)} hosts" if per_host else "")


def check_rule(
    api: PrometheusAPI, source: str, name: str, expr: str, kind: Literal["recording", "alert"]
) -> QueryCheck:
    has_data, error = _run(api, expr)
    if has_data is None:
        return QueryCheck(kind, source, name, expr, "error", error)
    if kind == "alert":
        # An alert expression returns data exactly when the alert is (pending or) firing.
        return QueryCheck(
            kind,
            source,
            name,
            expr,
            "data" if has_data else "no data",
            # Whether it is pending or firing, and about what, is in report.alerts.
            "pending or firing" if has_data else "not active",
        )
    return QueryCheck(kind, source, name, expr, "data" if has_data else "no data")


# Per-host panels run once per host; on a large fleet that is panels x hosts queries,
# so by default they run for the first hosts of the inventory only.
PANEL_HOSTS = 20


def check_queries(
    fleet: Fleet,
    api: PrometheusAPI,
    out: Path,
    report: VerifyReport,
    *,
    panel_hosts: int | None = PANEL_HOSTS,
    workers: int = 4,
) -> None:
    targets = list(dashboard_targets(out, fleet))
    rules = list(rule_expressions(out))
    if not targets:
        report.notes.append(f"no dashboards in {out / 'grafana' / 'dashboards'}")
    if not rules:
        report.notes.append(f"no central rules in {out / 'central' / 'rules'}")
    names = [h.name for h in fleet.hosts]
    sampled = names if panel_hosts is None else names[:panel_hosts]
    if len(sampled) < len(names):
        report.notes.append(
            f"per-host panels were run for the first {len(sampled)} of {len(names)} hosts "
            "(--panel-hosts)"
        )
    dashboards = {t.dashboard: t.variables for t in targets}
    keys = [(d, h) for d in dashboards for h in [None, *sampled]]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        values = pool.map(lambda k: resolve_variables(api, fleet, dashboards[k[0]], k[1]), keys)
        resolved: Resolved = dict(zip(keys, values, strict=True))
        target_checks = list(pool.map(lambda t: check_panel(api, sampled, t, resolved), targets))
        rule_checks = list(pool.map(lambda r: check_rule(api, *r), rules))
    grouped: dict[tuple[str, int], list[tuple[_Target, QueryCheck]]] = {}
    for target, checked in zip(targets, target_checks, strict=True):
        grouped.setdefault(target.panel_key, []).append((target, checked))
    report.panels = [
        panel_check(pairs[0][0].dashboard, pairs[0][0].panel_title, [c for _, c in pairs])
        for pairs in grouped.values()
    ]
    report.queries.extend(rule_checks)


Progress = Callable[[int, "VerifyReport | None", "RemoteError | None", float], None]


def verify_until(
    run: Callable[[], VerifyReport],
    seconds: float,
    *,
    interval: float = 2.0,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyReport:
    """Run ``run`` until its report is ok or ``seconds`` have passed (``--wait``).

    Right after a deploy the centre may not answer yet: a remote failure is retried
    like a failed report, and raised only if the deadline passes without any report.
    ``progress(attempt, report, error, seconds_left)`` follows every failed attempt.
    """
    deadline = clock() + seconds
    attempt = 0
    while True:
        attempt += 1
        report: VerifyReport | None = None
        error: RemoteError | None = None
        try:
            report = run()
        except RemoteError as err:
            error = err
        if report is not None and report.ok:
            return report
        left = deadline - clock()
        if left <= 0:
            if report is None:
                assert error is not None
                raise error
            return report
        if progress is not None:
            progress(attempt, report, error, left)
        sleep(min(interval, left))


def verify(
    fleet: Fleet,
    api: PrometheusAPI,
    *,
    out: Path | None = None,
    stale_after: float | None = None,
    hosts_only: bool = False,
    panel_hosts: int | None = PANEL_HOSTS,
    logs: LogsBackend | None = None,
    traces: TracesBackend | None = None,
    signals_window: float = 300.0,
    deep: bool = False,
    deep_sample: int | None = None,
    alertmanager_timeout: float = ALERTMANAGER_TIMEOUT,
) -> VerifyReport:
    """Check the centre behind ``api`` against ``fleet`` (and OUT's queries)."""
    report = VerifyReport(
        prometheus=api.url,
        mode=fleet.central.prometheus.mode,
        stale_after=default_stale_after(fleet) if stale_after is None else stale_after,
    )
    check_hosts(fleet, api, report)
    if not hosts_only:
        report.alerts = alerts_seen(api, alertmanager_timeout=alertmanager_timeout)
    if deep:
        report.deep = deep_check(fleet, api, sample=deep_sample)
    if logs is not None or traces is not None:
        for name, backend in (("logs", logs), ("traces", traces)):
            if backend is not None:
                report.signal_backends[name] = f"{backend.kind} {backend.url}"
        report.signals = check_host_signals(
            [h.name for h in fleet.hosts], logs, traces, window=signals_window
        )
    if out is not None and not hosts_only:
        check_queries(fleet, api, out, report, panel_hosts=panel_hosts)
    return report
