"""Fleet overview: is the fleet healthy, where is the load, which hosts log errors."""

from __future__ import annotations

import math

from flobs.artifacts.central_rules import (
    CENTRAL_RULE_FAILURES,
    CENTRAL_SAMPLE_LIMIT,
    HOSTS_DOWN,
    INVENTORY_HOST,
)
from flobs.artifacts.central_rules import SERVER_ERROR_CODES as SERVER_ERRORS
from flobs.artifacts.dashboards.panels import (
    ERROR_LEVELS,
    HOST_LINK,
    HOSTS,
    DashboardSpec,
    PanelSpec,
    RowSpec,
    View,
    logql,
    promql,
)

UID = "flobs-fleet"
TOP = 10  # hosts shown in "top hosts" panels: readable at 1,000 hosts


def spec(view: View) -> DashboardSpec:
    up = view.host_up_where(HOSTS)
    handled = f"host:grpc_server_handled:rate5m{{{HOSTS}}}"
    server_errors = f'host:grpc_server_handled:rate5m{{{HOSTS}, grpc_code=~"{SERVER_ERRORS}"}}'
    hosts = RowSpec(
        "Hosts",
        (
            PanelSpec(
                "Hosts up",
                "Hosts whose series reach the central Prometheus now.",
                "none",
                "stat",
                (promql(f"sum({up})", instant=True),),
                width=4,
                height=5,
            ),
            PanelSpec(
                "Hosts down",
                "Hosts the central cannot hear from (see the FlobsHostDown alert).",
                "none",
                "stat",
                (promql(f"{_down(view, HOSTS, 'count')} or vector(0)", instant=True),),
                width=4,
                height=5,
                thresholds=((1, "red"),),
            ),
            PanelSpec(
                "MicroVMs",
                "MicroVMs reported by flintlock-metrics on the selected hosts.",
                "none",
                "stat",
                (promql(f"sum(host:microvms:count{{{HOSTS}}})", instant=True),),
                width=4,
                height=5,
            ),
            _up_and_down(view, up),
            PanelSpec(
                "MicroVMs per host",
                f"The {TOP} hosts running the most microVMs.",
                "none",
                "timeseries",
                (
                    promql(
                        f"topk({TOP}, sum by (host) (host:microvms:count{{{HOSTS}}}))", "{{host}}"
                    ),
                ),
                width=24,
                height=8,
                links=(HOST_LINK,),
            ),
        ),
    )
    api = RowSpec(
        "flintlockd API",
        (
            PanelSpec(
                "gRPC calls by method",
                "flintlockd gRPC calls per second, by method, over the selected hosts "
                "(go-grpc-prometheus `grpc_server_handled_total`, 5m rate on each host).",
                "reqps",
                "timeseries",
                (promql(f"sum by (grpc_method) ({handled})", "{{grpc_method}}"),),
            ),
            PanelSpec(
                "gRPC server error ratio by method",
                "Share of calls ending in a server-side code (Internal, Unavailable, Unknown, "
                "DeadlineExceeded, …). The red line is the FlintlockdGrpcErrors threshold. "
                "flintlockd has no handling-time histogram, so there is no latency panel.",
                "percentunit",
                "timeseries",
                (
                    promql(
                        f"sum by (grpc_method) ({server_errors})"
                        f" / sum by (grpc_method) ({handled})",
                        "{{grpc_method}}",
                    ),
                ),
                thresholds=((view.grpc_error_ratio, "red"),),
                min=0,
            ),
            PanelSpec(
                "gRPC errors by code",
                "Non-OK calls per second by gRPC code, client codes too.",
                "reqps",
                "timeseries",
                (
                    promql(
                        f"sum by (grpc_code) (host:grpc_server_handled:rate5m{{{HOSTS}, "
                        f'grpc_code!="OK"}})',
                        "{{grpc_code}}",
                    ),
                ),
            ),
            PanelSpec(
                "Hosts by gRPC server error ratio",
                f"The {TOP} hosts with the highest server-side error ratio over all methods.",
                "percentunit",
                "timeseries",
                (
                    promql(
                        f"topk({TOP}, sum by (host) ({server_errors}) / sum by (host) ({handled}))",
                        "{{host}}",
                    ),
                ),
                thresholds=((view.grpc_error_ratio, "red"),),
                min=0,
                links=(HOST_LINK,),
            ),
        ),
    )
    io = RowSpec(
        "MicroVM I/O",
        (
            PanelSpec(
                "Top hosts by microVM network throughput",
                f"The {TOP} hosts whose microVMs move the most network bytes (rx+tx; "
                "Firecracker per-flush deltas divided by the flush interval, Cloud Hypervisor "
                "rates).",
                "Bps",
                "timeseries",
                (
                    promql(
                        f"topk({TOP}, sum by (host) "
                        f"(host:microvm_network_bytes:per_second{{{HOSTS}}}))",
                        "{{host}}",
                    ),
                ),
                links=(HOST_LINK,),
            ),
            PanelSpec(
                "Top hosts by microVM block throughput",
                f"The {TOP} hosts whose microVMs read and write the most block bytes.",
                "Bps",
                "timeseries",
                (
                    promql(
                        f"topk({TOP}, sum by (host) "
                        f"(host:microvm_block_bytes:per_second{{{HOSTS}}}))",
                        "{{host}}",
                    ),
                ),
                links=(HOST_LINK,),
            ),
        ),
    )
    pressure = RowSpec(
        "Host pressure",
        (
            PanelSpec(
                "Busiest hosts by CPU",
                f"The {TOP} hosts with the highest CPU utilisation.",
                "percentunit",
                "timeseries",
                (promql(f"topk({TOP}, host:node_cpu_utilisation:ratio{{{HOSTS}}})", "{{host}}"),),
                width=6,
                min=0,
                max=1,
                thresholds=((0.9, "red"),),
                links=(HOST_LINK,),
            ),
            PanelSpec(
                "Busiest hosts by memory",
                f"The {TOP} hosts with the least memory available.",
                "percentunit",
                "timeseries",
                (
                    promql(
                        f"topk({TOP}, host:node_memory_utilisation:ratio{{{HOSTS}}})", "{{host}}"
                    ),
                ),
                width=6,
                min=0,
                max=1,
                thresholds=((0.9, "red"),),
                links=(HOST_LINK,),
            ),
            PanelSpec(
                "Fullest filesystems",
                f"The {TOP} hosts whose fullest real filesystem is "
                "fullest (tmpfs, overlay and squashfs excluded).",
                "percentunit",
                "timeseries",
                (
                    promql(
                        f"topk({TOP}, host:node_filesystem_usage:ratio_max{{{HOSTS}}})", "{{host}}"
                    ),
                ),
                width=6,
                min=0,
                max=1,
                thresholds=((0.85, "red"),),
                links=(HOST_LINK,),
            ),
            PanelSpec(
                "Highest load per CPU",
                f"The {TOP} hosts with the highest 1m load per CPU.",
                "none",
                "timeseries",
                (promql(f"topk({TOP}, host:node_load1_per_cpu:ratio{{{HOSTS}}})", "{{host}}"),),
                width=6,
                min=0,
                thresholds=((1, "red"),),
                links=(HOST_LINK,),
            ),
        ),
    )
    logs = RowSpec(
        "Logs",
        (
            PanelSpec(
                "Log errors per host",
                f"flintlockd log lines per second at level {ERROR_LEVELS} per host (Loki).",
                "cps",
                "timeseries",
                (
                    logql(
                        # `| level=~` (not a stream matcher): over Loki's OTLP ingestion
                        # level is structured metadata, which only a filter sees.
                        f'sum by (host) (rate({{{HOSTS}}} | level=~"{ERROR_LEVELS}" [$__auto]))',
                        "{{host}}",
                        logsql=f'{{{HOSTS}, level=~"{ERROR_LEVELS}"}} '
                        "| stats by (host) rate() as lines_per_second",
                    ),
                ),
                links=(HOST_LINK,),
            ),
            PanelSpec(
                "Recent errors",
                "The latest flintlockd error lines of the selected hosts.",
                "short",
                "logs",
                (
                    logql(
                        f'{{{HOSTS}}} | level=~"{ERROR_LEVELS}"',
                        logsql=f'{{{HOSTS}, level=~"{ERROR_LEVELS}"}}',
                    ),
                ),
            ),
        ),
    )
    return DashboardSpec(
        UID,
        "Flintlock / Fleet overview",
        "Health of every Flintlock host: reachability, microVMs, flintlockd's API, "
        "microVM I/O, host pressure and log errors. Generated by flobs.",
        ("datasource", "cluster", "hosts", "group_by"),
        (hosts, api, io, pressure, logs, pipeline_row(view)),
    )


def _up_and_down(view: View, up: str) -> PanelSpec:
    """Hosts up and down per value of the inventory label picked in ``group_by``.

    Grafana substitutes ``$group_by`` in the legend too, so ``{{$group_by}}`` becomes
    ``{{rack}}`` and then each series' rack. The title is the same for every fleet, so
    panel overrides (extensions) can name it.
    """
    by = "$group_by"
    return PanelSpec(
        f"Hosts up and down by {by}",
        "Reachable and unreachable hosts per value of the inventory label picked in "
        "*Group by* (hosts without that label are grouped as empty).",
        "none",
        "timeseries",
        (
            promql(f"sum by ({by}) ({up})", f"{{{{{by}}}}} up"),
            promql(_down(view, HOSTS, f"count by ({by})"), f"{{{{{by}}}}} down"),
        ),
        width=12,
        height=5,
    )


def _down(view: View, matchers: str, aggregate: str) -> str:
    """Hosts the centre cannot hear from, aggregated (``count`` or ``count by (rack)``).

    The same as FlobsHostDown (central_rules.host_down_expr): in remote_write mode the
    inventory's hosts without a fresh ``up``, however long ago they stopped.
    """
    up = view.host_up_where(matchers)
    if view.federation:
        return f"{aggregate} ({up} == 0)"
    return (
        f"{aggregate} ({INVENTORY_HOST}{{{matchers}}} unless on (cluster, host) "
        f"max_over_time({up}[{view.host_silence}]))"
    )


def pipeline_row(view: View) -> RowSpec:
    """The centre's own health: the quantities of FlobsClusterDown and FlobsCentral*."""
    ratio = view.alert("cluster_down_ratio")
    need = max(1, math.ceil(ratio * view.hosts - 1e-9))
    panels = [
        PanelSpec(
            "Hosts down in the cluster",
            f"Hosts the centre cannot hear from ({HOSTS_DOWN}). The red line is where "
            "FlobsClusterDown fires (cluster_down_ratio of the inventory's hosts) and mutes "
            "the per-host alerts.",
            "none",
            "timeseries",
            (promql(f'{HOSTS_DOWN}{{cluster="$cluster"}}', "hosts down"),),
            width=8 if view.federation else 24,
            min=0,
            thresholds=((need, "red"),),
        ),
    ]
    if view.federation:
        panels += [
            PanelSpec(
                "Central rule evaluation failures",
                "Failed rule evaluations per second in the central Prometheus "
                "(FlobsCentralRuleEvaluationFailures fires above 0).",
                "ops",
                "timeseries",
                (promql(CENTRAL_RULE_FAILURES, "{{rule_group}}"),),
                width=8,
                min=0,
                thresholds=((0.000001, "red"),),
            ),
            PanelSpec(
                "Central scrapes over sample_limit",
                "Federate scrapes dropped per second for exceeding sample_limit "
                "(FlobsCentralSampleLimitHit fires above 0).",
                "ops",
                "timeseries",
                (promql(CENTRAL_SAMPLE_LIMIT, "scrapes"),),
                width=8,
                min=0,
                thresholds=((0.000001, "red"),),
            ),
        ]
    return RowSpec("Alerting pipeline", tuple(panels))
