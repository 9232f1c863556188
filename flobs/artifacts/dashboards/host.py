"""Host detail: one Flintlock host's flintlockd, API, microVMs, pressure, logs and traces."""

from __future__ import annotations

from flobs.artifacts.dashboards.panels import (
    HOST,
    MICROVM_LINK,
    DashboardSpec,
    PanelSpec,
    RowSpec,
    View,
    logql,
    promql,
    traceql,
)
from flobs.artifacts.series import RPC_CALLS, RPC_DURATION

UID = "flobs-host"
FLINTLOCKD = f'{HOST}, groupname="flintlockd"'
PER_VM = "{{namespace}}/{{name}}"
PER_DEVICE = "{{namespace}}/{{name}} {{device}}"


def _io(title: str, what: str, fc_key: str, ch_key: str, unit: str) -> PanelSpec:
    """A per-microVM panel over both providers: Firecracker and Cloud Hypervisor."""
    return PanelSpec(
        title,
        f"{what} per microVM. Firecracker: per-flush deltas divided by the flush interval "
        "(never rate()); Cloud Hypervisor: 5m rate of its cumulative counters, per device.",
        unit,
        "timeseries",
        (
            promql(
                f"sum by (host, namespace, name) "
                f"(microvm:firecracker_{fc_key}:per_second{{{HOST}}})",
                PER_VM,
            ),
            promql(
                f"sum by (host, namespace, name, device) "
                f"(microvm:cloud_hypervisor_{ch_key}:rate5m{{{HOST}}})",
                PER_DEVICE,
            ),
        ),
        width=6,
        links=(MICROVM_LINK,),
    )


FAILURES = (
    ("vmm_panic_count", "VMM panics"),
    ("seccomp_num_faults", "seccomp faults"),
    ("signals_sigbus", "SIGBUS"),
    ("signals_sigsegv", "SIGSEGV"),
    ("vcpu_failures", "vCPU failures"),
    ("net_rx_fails", "net rx failures"),
    ("net_tx_fails", "net tx failures"),
    ("block_execute_fails", "block failures"),
    ("logger_missed_metrics_count", "missed metrics"),
)


def spec(view: View) -> DashboardSpec:
    process = RowSpec(
        "flintlockd",
        (
            PanelSpec(
                "flintlockd up",
                "1 when the local Prometheus scrapes flintlockd's debug "
                "endpoint; 0 when flintlockd is down (FlintlockdDown alert).",
                "none",
                "stat",
                (promql(f'up{{{HOST}, job="flintlockd"}}', instant=True),),
                width=4,
                height=6,
                thresholds=((0, "red"), (1, "green")),
            ),
            PanelSpec(
                "flintlockd restarts",
                "Process restarts in the selected time range "
                "(changes of the process start time, process-exporter).",
                "none",
                "stat",
                (
                    promql(
                        f"changes(host:process_start_time_seconds:max{{{FLINTLOCKD}}}[$__range])",
                        instant=True,
                    ),
                ),
                width=4,
                height=6,
                thresholds=((1, "orange"),),
            ),
            PanelSpec(
                "flintlockd CPU",
                "CPU used by flintlockd processes; 1 = one full core.",
                "percentunit",
                "timeseries",
                (promql(f"host:process_cpu_seconds:rate5m{{{FLINTLOCKD}}}", "flintlockd"),),
                width=8,
                height=6,
                min=0,
            ),
            PanelSpec(
                "flintlockd resident memory",
                "Resident memory of flintlockd processes.",
                "bytes",
                "timeseries",
                (promql(f"host:process_resident_memory_bytes:sum{{{FLINTLOCKD}}}", "flintlockd"),),
                width=8,
                height=6,
                min=0,
            ),
        ),
    )
    api = RowSpec(
        "gRPC API",
        (
            PanelSpec(
                "gRPC calls by method and code",
                "flintlockd gRPC calls per second.",
                "reqps",
                "timeseries",
                (
                    promql(
                        f"sum by (grpc_method, grpc_code) "
                        f"(host:grpc_server_handled:rate5m{{{HOST}}})",
                        "{{grpc_method}} {{grpc_code}}",
                    ),
                ),
                width=8,
            ),
            PanelSpec(
                "gRPC server error ratio by method",
                "Share of calls per method that end in a "
                "server-side code; the red line is the FlintlockdGrpcErrors threshold.",
                "percentunit",
                "timeseries",
                (
                    promql(
                        f"host_method:grpc_server_errors:ratio_rate5m{{{HOST}}}", "{{grpc_method}}"
                    ),
                ),
                width=8,
                min=0,
                thresholds=((view.grpc_error_ratio, "red"),),
            ),
            PanelSpec(
                "gRPC calls started by type",
                "Calls started per second by method type "
                "(unary, server_stream for ListMicroVMsStream).",
                "reqps",
                "timeseries",
                (
                    promql(
                        f"sum by (grpc_type) (host:grpc_server_started:rate5m{{{HOST}}})",
                        "{{grpc_type}}",
                    ),
                ),
                width=8,
            ),
        ),
    )
    microvms = RowSpec(
        "MicroVMs",
        (
            _io("Network receive", "Bytes received", "net_rx_bytes_count", "net_rx_bytes", "Bps"),
            _io("Network transmit", "Bytes sent", "net_tx_bytes_count", "net_tx_bytes", "Bps"),
            _io(
                "Block read", "Bytes read from disks", "block_read_bytes", "disk_read_bytes", "Bps"
            ),
            _io(
                "Block write",
                "Bytes written to disks",
                "block_write_bytes",
                "disk_write_bytes",
                "Bps",
            ),
            PanelSpec(
                "vCPU exits per microVM",
                "Firecracker vCPU exits (I/O and MMIO) per second; a "
                "flat line on a running guest means its metrics are stale.",
                "ops",
                "timeseries",
                (promql(f"microvm:firecracker_vcpu_exits:per_second{{{HOST}}}", PER_VM),),
                links=(MICROVM_LINK,),
            ),
            PanelSpec(
                "Firecracker failures",
                "Failure counters Firecracker wrote in its last flush, "
                "per microVM (per-flush counts: any non-zero value is an event).",
                "short",
                "timeseries",
                tuple(
                    promql(f"microvm:firecracker_{key}:sum{{{HOST}}} > 0", f"{label} {PER_VM}")
                    for key, label in FAILURES
                ),
                links=(MICROVM_LINK,),
            ),
        ),
    )
    pressure = RowSpec(
        "Host pressure",
        (
            PanelSpec(
                "CPU utilisation",
                "Share of CPU time not idle, all CPUs.",
                "percentunit",
                "timeseries",
                (promql(f"host:node_cpu_utilisation:ratio{{{HOST}}}", "cpu"),),
                width=6,
                min=0,
                max=1,
                thresholds=((0.9, "red"),),
            ),
            PanelSpec(
                "Memory utilisation",
                "1 - MemAvailable / MemTotal.",
                "percentunit",
                "timeseries",
                (promql(f"host:node_memory_utilisation:ratio{{{HOST}}}", "memory"),),
                width=6,
                min=0,
                max=1,
                # HostMemoryLow's threshold.
                thresholds=((round(1 - view.alert("memory_available_ratio"), 6), "red"),),
            ),
            PanelSpec(
                "Fullest filesystem",
                "Usage of the fullest real filesystem.",
                "percentunit",
                "timeseries",
                (promql(f"host:node_filesystem_usage:ratio_max{{{HOST}}}", "filesystem"),),
                width=6,
                min=0,
                max=1,
                # HostFilesystemAlmostFull's threshold.
                thresholds=((round(1 - view.alert("filesystem_free_ratio"), 6), "red"),),
            ),
            PanelSpec(
                "Load per CPU",
                "1m load average divided by the number of CPUs.",
                "none",
                "timeseries",
                (promql(f"host:node_load1_per_cpu:ratio{{{HOST}}}", "load"),),
                width=6,
                min=0,
                thresholds=((1, "red"),),
            ),
        ),
    )
    by_method = f"{RPC_DURATION}{{{HOST}}}"
    latency = RowSpec(
        "API latency (from traces)",
        (
            PanelSpec(
                "Call latency by method",
                "p50, p90 and p99 of each gRPC method's handling time, from flintlockd's "
                "spans (the collector's spanmetrics connector): flintlockd itself exports "
                "no handling-time histogram.",
                "s",
                "timeseries",
                tuple(
                    promql(
                        f"histogram_quantile({q}, sum by (rpc_method, le) ({by_method}))",
                        f"{{{{rpc_method}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.9, 0.99)
                ),
                width=12,
                min=0,
            ),
            PanelSpec(
                "Failed calls by method (from traces)",
                "Calls per second whose span ended with a non-OK gRPC code, by method and "
                "code (rpc.grpc.status_code: 5 NotFound, 6 AlreadyExists, 13 Internal, …).",
                "reqps",
                "timeseries",
                (
                    promql(
                        "sum by (rpc_method, rpc_grpc_status_code) "
                        f'({RPC_CALLS}{{{HOST}, rpc_grpc_status_code!="0"}})',
                        "{{rpc_method}} code {{rpc_grpc_status_code}}",
                    ),
                ),
                width=12,
                min=0,
            ),
        ),
    )
    agents = RowSpec(
        "Scrape targets",
        (
            PanelSpec(
                "Local scrape targets up",
                "Every job the host's local Prometheus scrapes: "
                "flintlockd, flintlock-metrics, exporters, log shipper, collector (1 = up).",
                "none",
                "timeseries",
                (promql(f"up{{{HOST}}}", "{{job}}"),),
                width=8,
                height=6,
                min=0,
                max=1,
            ),
            PanelSpec(
                "Samples per scrape by job",
                "Samples each local job returned in its last scrape: a job climbing towards "
                "its sample_limit is a cardinality explosion on its way (FlobsSampleLimitHit "
                "fires once a scrape is dropped).",
                "short",
                "timeseries",
                (promql(f"scrape_samples_scraped{{{HOST}}}", "{{job}}"),),
                width=8,
                height=6,
                min=0,
            ),
            PanelSpec(
                "Local Prometheus head series",
                "Series in the head block of the host's own Prometheus: its memory grows "
                "with them.",
                "short",
                "timeseries",
                (promql(f"prometheus_tsdb_head_series{{{HOST}}}", "head series"),),
                width=8,
                height=6,
                min=0,
            ),
        ),
    )
    signals = RowSpec(
        "Logs and traces",
        (
            PanelSpec(
                "flintlockd logs",
                "flintlockd's log lines from this host (Loki). Lines with a "
                "trace_id link to the trace in Tempo.",
                "short",
                "logs",
                (logql(f"{{{HOST}}}", logsql=f"{{{HOST}}}"),),
                width=14,
                height=12,
            ),
            PanelSpec(
                "Recent traces",
                "The latest traces whose resource carries this host's name "
                "(the host's OpenTelemetry Collector sets host.name).",
                "short",
                "traces",
                (
                    traceql(
                        '{ resource.host.name = "$host" && resource.flintlock.cluster = '
                        '"$cluster" }',
                        jaeger_tags='host.name="$host" flintlock.cluster="$cluster"',
                    ),
                ),
                width=10,
                height=12,
            ),
        ),
    )
    return DashboardSpec(
        UID,
        "Flintlock / Host detail",
        "One Flintlock host: flintlockd process and gRPC API, its microVMs' I/O and "
        "failures, host pressure, scrape targets, logs and traces. Generated by flobs.",
        ("datasource", "cluster", "host"),
        (process, api, latency, microvms, pressure, health_row(view), agents, signals),
    )


def health_row(view: View) -> RowSpec:
    """One panel per host alert added with the alert pack, drawn at the alert's threshold."""
    inodes = round(1 - view.alert("inodes_free_ratio"), 6)
    panels = [
        PanelSpec(
            "Inodes used (fullest filesystem)",
            "Share of inodes used on the real filesystem with the fewest free "
            "(HostInodesAlmostExhausted).",
            "percentunit",
            "timeseries",
            (promql(f"host:node_filesystem_files_usage:ratio_max{{{HOST}}}", "inodes"),),
            width=6,
            min=0,
            max=1,
            thresholds=((inodes, "red"),),
        ),
        PanelSpec(
            "Network errors by interface",
            "Receive + transmit errors per second (HostNetworkErrors).",
            "ops",
            "timeseries",
            (promql(f"host:node_network_errors:rate5m{{{HOST}}}", "{{device}}"),),
            width=6,
            min=0,
            thresholds=((view.alert("network_errors_per_second"), "red"),),
        ),
        PanelSpec(
            "Clock offset",
            "Absolute offset of the clock from its time source (HostClockSkew); "
            "0 in the sync panel means not synchronising (HostClockNotSynchronising).",
            "s",
            "timeseries",
            (
                promql(f"host:node_timex_offset_seconds:max_abs{{{HOST}}}", "offset"),
                promql(f"host:node_timex_sync_status:min{{{HOST}}}", "synchronised (1)"),
            ),
            width=6,
            min=0,
            thresholds=((view.alert("clock_offset_seconds"), "red"),),
        ),
        PanelSpec(
            "VMM processes vs microVMs",
            "Firecracker and Cloud Hypervisor processes (process-exporter) against microVMs "
            "flintlock-metrics reports; apart for long: FlintlockVmmProcessMismatch.",
            "none",
            "timeseries",
            (
                promql(
                    f"sum(host:process_count:sum{{{HOST}, "
                    'groupname=~"firecracker|cloud-hypervisor"})',
                    "VMM processes",
                ),
                promql(f"sum(host:microvms:count{{{HOST}}})", "microVMs"),
            ),
            width=6,
            min=0,
        ),
        PanelSpec(
            "Local rule evaluation failures",
            "Failed rule evaluations per second in the host's Prometheus "
            "(FlobsRuleEvaluationFailures fires above 0).",
            "ops",
            "timeseries",
            (promql(f"host:prometheus_rule_evaluation_failures:rate5m{{{HOST}}}", "failures"),),
            width=6,
            min=0,
            thresholds=((0.000001, "red"),),
        ),
        PanelSpec(
            "Scrapes over sample_limit",
            "Local scrapes dropped per second for exceeding sample_limit "
            "(FlobsSampleLimitHit fires above 0).",
            "ops",
            "timeseries",
            (
                promql(
                    f"host:prometheus_target_scrapes_exceeded_sample_limit:rate5m{{{HOST}}}",
                    "scrapes",
                ),
            ),
            width=6,
            min=0,
            thresholds=((0.000001, "red"),),
        ),
    ]
    if view.federation:
        ratio = view.alert("federation_slow_ratio")
        panels.append(
            PanelSpec(
                "Federate scrape duration",
                "How long the central federate scrape of this host takes; the red line is "
                "where FlobsFederationSlow fires (federation_slow_ratio of scrape_timeout).",
                "s",
                "timeseries",
                (promql(f'scrape_duration_seconds{{job="federate", {HOST}}}', "federate"),),
                width=12,
                min=0,
                thresholds=((round(ratio * view.scrape_timeout, 3), "red"),),
            )
        )
    else:
        panels.append(
            PanelSpec(
                "remote_write lag",
                "Seconds between the newest sample appended and the newest sent to the store "
                "(FlobsRemoteWriteBehind).",
                "s",
                "timeseries",
                (promql(f"host:prometheus_remote_storage_behind:seconds{{{HOST}}}", "lag"),),
                width=12,
                min=0,
                thresholds=((view.alert("remote_write_behind_seconds"), "red"),),
            )
        )
    return RowSpec("Capacity and pipeline", tuple(panels))
