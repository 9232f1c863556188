"""The series contract between hosts and the centre.

Every host pre-aggregates with local recording rules (``level:metric:operations``);
the centre federates only those, ``up``, and a short allow-list of raw series.
This module is the one place that says which series cross the wire: the local
rules, the federation ``match[]``, remote_write relabelling, the closure check and
the dashboards all read it.

Facts relied on (flintlock-facts.md):
* flintlock-metrics series are renamed at scrape time (see ``prometheus_local``):
  Firecracker's ``<group>_<key>`` becomes ``firecracker_<group>_<key>`` and Cloud
  Hypervisor's ``_<dev><n>_<key>`` becomes ``cloud_hypervisor_<dev>_<key>{device="<dev><n>"}``.
* Firecracker values are deltas per flush (every ``flush_interval``), so per-second
  figures divide by the flush interval; ``rate()`` over them is wrong.
* Cloud Hypervisor counters are cumulative, so ``rate()`` is right for them.
* flintlockd has no ``grpc_server_handling_seconds`` histogram: latency comes from
  its spans instead, as the collector's spanmetrics connector counts them (job
  ``flintlockd-spans``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flobs import promql
from flobs.artifacts import extensions
from flobs.model import Fleet, Host, HostScope
from flobs.promtime import seconds


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str
    group: str


# Raw series federated as they are, beyond recording rules and `up`. Keep it short:
# every entry multiplies by the number of hosts at the centre.
FEDERATED_RAW: tuple[str, ...] = (
    "up",  # one per local job: is flintlockd / each exporter / each agent scraped at all?
    # Per-job sample counts, to spot a cardinality explosion early (Host detail).
    "scrape_samples_scraped",
    "prometheus_tsdb_head_series",  # the local Prometheus' own load (Host detail)
)

# Firecracker per-flush delta series that get a per-second recording rule.
FIRECRACKER_RATES: tuple[str, ...] = (
    "net_rx_bytes_count",
    "net_tx_bytes_count",
    "net_rx_packets_count",
    "net_tx_packets_count",
    "block_read_bytes",
    "block_write_bytes",
    "block_read_count",
    "block_write_count",
    "vcpu_exit_io_in",
    "vcpu_exit_io_out",
    "vcpu_exit_mmio_read",
    "vcpu_exit_mmio_write",
)
# Firecracker failure counters, summed per flush (any non-zero value is an event).
FIRECRACKER_FAILURES: tuple[str, ...] = (
    "net_rx_fails",
    "net_tx_fails",
    "block_execute_fails",
    "vcpu_failures",
    "vmm_panic_count",
    "seccomp_num_faults",
    "signals_sigbus",
    "signals_sigsegv",
    "logger_missed_metrics_count",
)
# Cloud Hypervisor cumulative counters, per device class, after relabelling.
CLOUD_HYPERVISOR_RATES: tuple[tuple[str, str], ...] = (
    ("disk", "read_bytes"),
    ("disk", "write_bytes"),
    ("disk", "read_ops"),
    ("disk", "write_ops"),
    ("net", "rx_bytes"),
    ("net", "tx_bytes"),
    ("net", "rx_frames"),
    ("net", "tx_frames"),
)

MICROVM_KEY = "namespace, name, uid"

# What the collector's spanmetrics connector serves (otelcol.SPANMETRICS_EXPORTER):
# OpenTelemetry names, as the Prometheus exporter writes them.
SPAN_CALLS = "traces_span_metrics_calls_total"
SPAN_DURATION = "traces_span_metrics_duration_seconds_bucket"
# flintlockd's own server spans: one per gRPC call (not its plan-step children).
FLINTLOCKD_SERVER_SPANS = (
    'job="flintlockd-spans", service_name="flintlockd", span_kind="SPAN_KIND_SERVER"'
)
RPC_DURATION = "host:flintlockd_rpc_duration_seconds_bucket:rate5m"
RPC_CALLS = "host:flintlockd_rpc_calls:rate5m"


def local_rules(host: Host, *, remote_write: bool) -> list[RecordingRule]:
    """The recording rules a host evaluates; their outputs are what the centre reads.

    Every output is read at the centre by a central rule or a dashboard panel
    (tests/test_closure.py proves it): a series nobody reads still costs a series per
    host at the centre. Errors per method come from ``host:grpc_server_handled:rate5m``
    with ``grpc_code!="OK"``, so there is no separate errors rule.
    """
    flush = seconds(host.vars.flintlock_metrics.flush_interval)
    rules = [
        # flintlockd gRPC API (go-grpc-prometheus interceptors).
        RecordingRule(
            "host:grpc_server_handled:rate5m",
            "sum by (grpc_service, grpc_method, grpc_code) "
            '(rate(grpc_server_handled_total{job="flintlockd"}[5m]))',
            "flobs-flintlockd",
        ),
        RecordingRule(
            "host:grpc_server_started:rate5m",
            "sum by (grpc_service, grpc_method, grpc_type) "
            '(rate(grpc_server_started_total{job="flintlockd"}[5m]))',
            "flobs-flintlockd",
        ),
        # Request rate, codes and latency from flintlockd's spans (spanmetrics).
        RecordingRule(
            RPC_DURATION,
            f"sum by (rpc_method, le) (rate({SPAN_DURATION}{{{FLINTLOCKD_SERVER_SPANS}}}[5m]))",
            "flobs-flintlockd",
        ),
        RecordingRule(
            RPC_CALLS,
            "sum by (rpc_method, rpc_grpc_status_code) "
            f"(rate({SPAN_CALLS}{{{FLINTLOCKD_SERVER_SPANS}}}[5m]))",
            "flobs-flintlockd",
        ),
        # Processes (process-exporter groups).
        RecordingRule(
            "host:process_cpu_seconds:rate5m",
            "sum by (groupname) (rate(namedprocess_namegroup_cpu_seconds_total[5m]))",
            "flobs-processes",
        ),
        RecordingRule(
            "host:process_resident_memory_bytes:sum",
            'sum by (groupname) (namedprocess_namegroup_memory_bytes{memtype="resident"})',
            "flobs-processes",
        ),
        RecordingRule(
            "host:process_count:sum",
            "sum by (groupname) (namedprocess_namegroup_num_procs)",
            "flobs-processes",
        ),
        RecordingRule(
            "host:process_start_time_seconds:max",
            "max by (groupname) (namedprocess_namegroup_oldest_start_time_seconds)",
            "flobs-processes",
        ),
        # Host pressure (node_exporter).
        RecordingRule(
            "host:node_cpu_utilisation:ratio",
            '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m]))',
            "flobs-node",
        ),
        RecordingRule(
            "host:node_memory_utilisation:ratio",
            "1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes)",
            "flobs-node",
        ),
        RecordingRule(
            "host:node_filesystem_usage:ratio_max",
            'max(1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} '
            '/ node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"})',
            "flobs-node",
        ),
        RecordingRule(
            "host:node_load1_per_cpu:ratio",
            'sum(node_load1) / count(node_cpu_seconds_total{mode="idle"})',
            "flobs-node",
        ),
        # Capacity alerts (node-mixin's NodeFilesystemFilesFillingUp, NodeNetworkReceiveErrs,
        # NodeClockSkewDetected, NodeClockNotSynchronising), one series per host or device.
        RecordingRule(
            "host:node_filesystem_files_usage:ratio_max",
            'max(1 - node_filesystem_files_free{fstype!~"tmpfs|overlay|squashfs"} '
            '/ node_filesystem_files{fstype!~"tmpfs|overlay|squashfs"})',
            "flobs-node",
        ),
        RecordingRule(
            "host:node_network_errors:rate5m",
            "sum by (device) (rate(node_network_receive_errs_total[5m])) "
            "+ sum by (device) (rate(node_network_transmit_errs_total[5m]))",
            "flobs-node",
        ),
        RecordingRule(
            "host:node_timex_offset_seconds:max_abs",
            "max(abs(node_timex_offset_seconds))",
            "flobs-node",
        ),
        RecordingRule(
            "host:node_timex_sync_status:min",
            "min(node_timex_sync_status)",
            "flobs-node",
        ),
        # The pipeline itself (prometheus-mixin's PrometheusRuleFailures,
        # PrometheusRemoteWriteBehind, PrometheusTargetSyncFailure family).
        RecordingRule(
            "host:prometheus_rule_evaluation_failures:rate5m",
            "sum(rate(prometheus_rule_evaluation_failures_total[5m]))",
            "flobs-pipeline",
        ),
        RecordingRule(
            "host:prometheus_target_scrapes_exceeded_sample_limit:rate5m",
            "sum(rate(prometheus_target_scrapes_exceeded_sample_limit_total[5m]))",
            "flobs-pipeline",
        ),
    ]
    if remote_write:
        # Seconds the newest sample sent lags the newest appended. Under federation
        # nothing is remote-written, so the rule would only record an empty series.
        rules.append(
            RecordingRule(
                "host:prometheus_remote_storage_behind:seconds",
                "max(max_over_time(prometheus_remote_storage_highest_timestamp_in_seconds[5m]) "
                "- ignoring (remote_name, url) group_right "
                "max_over_time("
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds[5m]))",
                "flobs-pipeline",
            )
        )
    rules += [
        # microVMs (flintlock-metrics).
        RecordingRule(
            "host:microvms:count",
            f"count(count by ({MICROVM_KEY}) "
            '({job="flintlock-metrics",__name__=~"firecracker_.+|cloud_hypervisor_.+"}))',
            "flobs-microvms",
        ),
    ]
    # Host totals of microVM I/O, Firecracker and Cloud Hypervisor together, for the
    # fleet's "top hosts" panels. `or vector(0)` keeps a host with only one provider
    # (or no microVMs) at a real number instead of an empty result. Each Cloud
    # Hypervisor counter is rated on its own: rate() drops the metric name, so rx and
    # tx of one device would collide in a single vector ("same labelset" error).
    for what, fc_keys, ch_names in (
        ("network", "net_(rx|tx)_bytes_count", ("net_rx_bytes", "net_tx_bytes")),
        ("block", "block_(read|write)_bytes", ("disk_read_bytes", "disk_write_bytes")),
    ):
        ch_terms = " + ".join(
            f"(sum(rate(cloud_hypervisor_{name}[5m])) or vector(0))" for name in ch_names
        )
        rules.append(
            RecordingRule(
                f"host:microvm_{what}_bytes:per_second",
                f'(sum({{__name__=~"firecracker_{fc_keys}"}}) / {flush:g} or vector(0)) + '
                + ch_terms,
                "flobs-microvms",
            )
        )
    # All vCPU exits of one Firecracker microVM per second. A running guest's value
    # differs from flush to flush; the centre's staleness alert relies on that.
    rules.append(
        RecordingRule(
            "microvm:firecracker_vcpu_exits:per_second",
            f'sum by ({MICROVM_KEY}) ({{__name__=~"firecracker_vcpu_exit_.+"}}) / {flush:g}',
            "flobs-microvms",
        )
    )
    for key in FIRECRACKER_RATES:
        # Per-flush deltas → per second: divide by the flush interval, never rate().
        rules.append(
            RecordingRule(
                f"microvm:firecracker_{key}:per_second",
                f"firecracker_{key} / {flush:g}",
                "flobs-microvms",
            )
        )
    for key in FIRECRACKER_FAILURES:
        rules.append(
            RecordingRule(
                f"microvm:firecracker_{key}:sum",
                f"sum by ({MICROVM_KEY}) (firecracker_{key})",
                "flobs-microvms",
            )
        )
    for device_class, key in CLOUD_HYPERVISOR_RATES:
        # Cumulative counters: rate() is right here.
        rules.append(
            RecordingRule(
                f"microvm:cloud_hypervisor_{device_class}_{key}:rate5m",
                f"rate(cloud_hypervisor_{device_class}_{key}[5m])",
                "flobs-microvms",
            )
        )
    return rules


def federation_match(fleet: Fleet) -> list[str]:
    """The federation ``match[]`` selectors: recording series, ``up``, the allow-list."""
    selectors = [
        '{__name__=~"host:.+"}',
        '{__name__=~"microvm:.+"}',
        *FEDERATED_RAW,
        *fleet.central.prometheus.extra_match,
        *extensions.federation_selectors(fleet),
    ]
    return list(dict.fromkeys(selectors))


def federated_name_regex(scope: HostScope) -> str:
    """One regex over ``__name__`` equivalent to the built-in selectors (remote_write keep).

    ``extra_match`` selectors cross the wire in remote_write mode too, by metric name:
    a keep regex over ``__name__`` cannot express their other label matchers.
    """
    names = ["host:.+", "microvm:.+", *FEDERATED_RAW]
    for extra in scope.central.prometheus.extra_match:
        for sel in promql.selectors(extra):
            matcher = sel.name_matcher()
            if matcher is not None and matcher[0] in ("=", "=~"):
                names.append(matcher[1])  # metric names hold no regex metacharacters
    names.extend(extensions.federated_names(scope))
    return "|".join(dict.fromkeys(names))


# What each local scrape job produces, as metric-name patterns (anchored regexes).
# The closure check uses it to decide whether a raw metric read by a rule or a
# dashboard is produced on the hosts at all. Synthetic series exist for every job.
SYNTHETIC: tuple[str, ...] = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)
# Jobs of the central Prometheus itself (central.verify): their series are at the
# centre already, never federated, and their names are not host job names.
# The federate job's scrape duration and the central's self-scrape counters feed the
# pipeline alerts (FlobsFederationSlow, FlobsCentral*), in federation mode only.
CENTRAL_JOB_PRODUCES: dict[str, tuple[str, ...]] = {
    "flobs-verify": ("flobs_verify_.+",),
    "federate": ("scrape_duration_seconds",),
    "prometheus": (
        "prometheus_rule_evaluation_failures_total",
        "prometheus_target_scrapes_exceeded_sample_limit_total",
    ),
}
JOB_PRODUCES: dict[str, tuple[str, ...]] = {
    # go-grpc-prometheus counters only: flintlockd does not enable the handling-time
    # histogram, so grpc_server_handling_seconds_* never exist (flintlock-facts.md).
    "flintlockd": (
        "grpc_server_(started|handled|msg_received|msg_sent)_total",
        "go_.+",
        "process_.+",
        "promhttp_.+",
    ),
    "flintlock-metrics": ("firecracker_.+", "cloud_hypervisor_.+"),
    "node": ("node_.+", "go_.+", "process_.+", "promhttp_.+"),
    "process": ("namedprocess_.+", "go_.+", "process_.+"),
    "containerd": ("container_.+", "containerd_.+", "go_.+", "process_.+"),
    "promtail": ("promtail_.+", "loki_.+", "go_.+", "process_.+"),
    "alloy": ("alloy_.+", "loki_.+", "go_.+", "process_.+"),
    "otelcol": ("otelcol_.+", "go_.+", "process_.+"),
    "flintlockd-spans": ("traces_span_metrics_.+", "target_info"),
    "prometheus": ("prometheus_.+", "go_.+", "process_.+", "net_conntrack_.+"),
}
