"""Central alert and recording rules, and the promtool unit tests that prove every alert.

Files (relative to OUT):

* ``central/rules/flobs-recording.yml``: what the dashboards and alerts aggregate.
* ``central/rules/flobs-alerts.yml``: one alert per failure that matters.
* ``central/tests/flobs-alerts.test.yml``: ``promtool test rules`` cases, one firing
  and at least one non-firing per alert. ``rule_files`` are relative to the test
  file, so ``promtool test rules central/tests/*.yml`` runs from any directory.

Every series read here reaches the centre through the series contract
(``series.py``): host and microVM recording rules, ``up``, and the short
allow-list. ``flobs.closure`` proves that for a generated tree.

Facts relied on (flintlock-facts.md): Firecracker values are per-flush deltas, so
nothing here applies ``rate()`` to them; flintlockd has no handling-time histogram,
so there is no latency alert.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flobs import versions
from flobs.artifacts.common import yaml_file
from flobs.artifacts.extensions import apply_alert_overrides
from flobs.artifacts.series import RPC_DURATION
from flobs.model import Fleet
from flobs.promtime import seconds

RECORDING_FILE = "central/rules/flobs-recording.yml"
ALERTS_FILE = "central/rules/flobs-alerts.yml"
TESTS_FILE = "central/tests/flobs-alerts.test.yml"
# remote_write mode: the inventory's hosts as series, so a host that stops writing stays
# "down" until the inventory drops it (federation has its targets for that).
INVENTORY_FILE = "central/rules/flobs-inventory.yml"
INVENTORY_TESTS_FILE = "central/tests/flobs-inventory.test.yml"
INVENTORY_HOST = "flobs:inventory_host:info"

# gRPC codes that mean the server failed, not the caller. NotFound, InvalidArgument,
# AlreadyExists, Canceled … are answers to a bad request and must not page anyone.
SERVER_ERROR_CODES = (
    "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss|ResourceExhausted"
)
GRPC_KEY = "cluster, host, grpc_service, grpc_method"

# Labels used on the synthetic series of the generated unit tests. They are not
# the inventory's: a test must not change when a host is renamed.
TEST_CLUSTER = "test-cluster"
TEST_HOST = "test-host"


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    group: str
    why: str  # documentation only


@dataclass(frozen=True)
class Case:
    """One promtool ``alert_rule_test`` with the series it needs."""

    name: str  # documentation: what the case proves
    series: tuple[tuple[str, str], ...]  # (series selector text, promtool values notation)
    eval_seconds: int
    fires: tuple[Mapping[str, str], ...]  # label sets of the expected alerts (no severity)
    interval_seconds: int = 60


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str  # Go template; only {{ $labels.x }} is used, so tests can render it
    description: str
    cases: tuple[Case, ...] = field(default=())
    # Carries `cluster` and `host`: a host down (or the whole cluster down) mutes it.
    per_host: bool = True
    # Alerts on the same host that this one makes redundant (Alertmanager inhibition).
    inhibits: tuple[str, ...] = ()

    def runbook(self, fleet: Fleet) -> str:
        return f"{fleet.central.runbook_base_url.rstrip('/')}/{self.name}.md"

    def with_labels(self, name: str, labels: Mapping[str, str]) -> Alert:
        """Expand case series given as the bare metric ``name`` into ``name{labels}``."""
        cases = tuple(
            Case(
                c.name,
                tuple((series_text(name, labels) if s == name else s, v) for s, v in c.series),
                c.eval_seconds,
                c.fires,
                c.interval_seconds,
            )
            for c in self.cases
        )
        return replace(self, cases=cases)


# --------------------------------------------------------------------------- helpers


def _quote(value: str) -> str:
    """A PromQL string literal (double-quoted, Go escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def series_text(name: str, labels: Mapping[str, str]) -> str:
    inner = ", ".join(f"{k}={_quote(v)}" for k, v in labels.items())
    return f"{name}{{{inner}}}"


def _minutes(duration: str) -> int:
    """Whole minutes covering ``duration`` (at least one)."""
    return max(1, math.ceil(seconds(duration) / 60))


def _host_labels(**extra: str) -> dict[str, str]:
    return {"cluster": TEST_CLUSTER, "host": TEST_HOST, **extra}


def _const(value: float | int, minutes: int) -> str:
    return f"{value:g}x{minutes}"


HOSTS_REPORTING = "cluster:hosts_reporting:count"
HOSTS_DOWN = "cluster:hosts_down:count"
# The central Prometheus's own health (federation mode, where it evaluates the rules).
CENTRAL_RULE_FAILURES = "central:prometheus_rule_evaluation_failures:rate5m"
CENTRAL_SAMPLE_LIMIT = "central:prometheus_target_scrapes_exceeded_sample_limit:rate5m"


def host_up_selector(fleet: Fleet) -> str:
    """The series saying "the centre hears from this host", per central mode.

    Federation: the central's own ``up`` of the federate job, one per host. In
    remote_write mode there is no central scrape of hosts; each host's local
    Prometheus scrapes itself (job ``prometheus``) and its ``up`` is written with
    the host's external labels, while the central's self-scrape has no ``host``.
    """
    if fleet.central.prometheus.mode == "federation":
        return 'up{job="federate"}'
    return 'up{job="prometheus", host!=""}'


def host_down_expr(fleet: Fleet) -> str:
    """One series per host the centre cannot hear from, labelled cluster and host.

    Federation: the federate scrape of the host fails. remote_write: the inventory's
    host has no ``up`` sample in the store for ``remote_write_silence(fleet)``. Writers
    send no staleness marker when they die, so a plain ``up`` would keep answering
    from its last sample for the whole 5m lookback (in Prometheus and VictoriaMetrics
    alike); a range over raw samples notices within a few scrapes. Comparing with the
    inventory (not with "wrote in the last hour") keeps the host down until it returns.
    """
    if fleet.central.prometheus.mode == "federation":
        return 'up{job="federate"} == 0'
    window = remote_write_silence(fleet)
    return (
        f"{INVENTORY_HOST} unless on (cluster, host) "
        f"max_over_time({host_up_selector(fleet)}[{window}])"
    )


def remote_write_silence(fleet: Fleet) -> str:
    """How long a host may send no ``up``: four scrapes of the slowest host, at least 1m.

    Covers remote_write's batching (5 s deadline) and a retry or two.
    """
    slowest = max((seconds(h.vars.scrape_interval) for h in fleet.hosts), default=60)
    return f"{max(60, math.ceil(4 * slowest))}s"


def hosts_down_expr(fleet: Fleet) -> str:
    every = (
        'up{job="federate"}' if fleet.central.prometheus.mode == "federation" else INVENTORY_HOST
    )
    # `or … * 0`: a cluster with no host down records 0, not nothing.
    return f"count by (cluster) ({host_down_expr(fleet)}) or count by (cluster) ({every}) * 0"


# --------------------------------------------------------------------------- recording


def recording_rules(fleet: Fleet) -> list[Recording]:
    handled = "host:grpc_server_handled:rate5m"
    server_errors = f'{handled}{{grpc_code=~"{SERVER_ERROR_CODES}"}}'
    # `errors or handled * 0` keeps methods without any server error at ratio 0
    # instead of dropping them (an empty numerator would hide healthy methods).
    errors = f"{server_errors} or {handled} * 0"
    return [
        Recording(
            "host_method:grpc_server_errors:ratio_rate5m",
            f"sum by ({GRPC_KEY}) ({errors}) / sum by ({GRPC_KEY}) ({handled})",
            "flobs-grpc",
            "share of each host's flintlockd calls per method that failed server-side",
        ),
        Recording(
            "method:grpc_server_errors:ratio_rate5m",
            "sum by (cluster, grpc_service, grpc_method) "
            f"({errors}) / sum by (cluster, grpc_service, grpc_method) ({handled})",
            "flobs-grpc",
            "the same across the fleet",
        ),
        Recording(
            "method:grpc_server_handled:rate5m",
            f"sum by (cluster, grpc_service, grpc_method, grpc_code) ({handled})",
            "flobs-grpc",
            "fleet-wide flintlockd calls per second by method and code",
        ),
        Recording(
            "cluster:hosts_up:sum",
            f"sum by (cluster) ({host_up_selector(fleet)})",
            "flobs-fleet",
            "hosts the centre hears from",
        ),
        Recording(
            HOSTS_REPORTING,
            f"count by (cluster) ({host_up_selector(fleet)})",
            "flobs-fleet",
            "hosts the centre has series from, up or not (FlobsHostsMissing compares it "
            "with the inventory)",
        ),
        Recording(
            HOSTS_DOWN,
            hosts_down_expr(fleet),
            "flobs-fleet",
            "hosts the centre cannot hear from (FlobsClusterDown compares it with the "
            "inventory; the fleet dashboard's Hosts down stat shows it)",
        ),
        Recording(
            "cluster:microvms:sum",
            "sum by (cluster) (host:microvms:count)",
            "flobs-fleet",
            "microVMs across the fleet",
        ),
        *(_central_self_rules() if fleet.central.prometheus.mode == "federation" else ()),
    ]


def _central_self_rules() -> list[Recording]:
    return [
        Recording(
            CENTRAL_RULE_FAILURES,
            "sum by (rule_group) "
            '(rate(prometheus_rule_evaluation_failures_total{job="prometheus"}[5m]))',
            "flobs-central",
            "the central's failed rule evaluations per second, per rule group",
        ),
        Recording(
            CENTRAL_SAMPLE_LIMIT,
            "sum(rate(prometheus_target_scrapes_exceeded_sample_limit_total"
            '{job="prometheus"}[5m]))',
            "flobs-central",
            "federate scrapes the central drops for exceeding sample_limit, per second",
        ),
    ]


# --------------------------------------------------------------------------- alerts


def _host_down(fleet: Fleet, for_: str) -> Alert:
    m = _minutes(for_)
    if fleet.central.prometheus.mode == "federation":
        labels = _host_labels(job="federate", instance="192.0.2.1:9091")
        return Alert(
            "FlobsHostDown",
            'up{job="federate"} == 0',
            for_,
            "critical",
            "Central Prometheus cannot federate host {{ $labels.host }}",
            "The federate scrape of {{ $labels.instance }} ({{ $labels.host }}) fails: "
            "the host, its local Prometheus or the network path is down, so none of its "
            "metrics reach the centre.",
            (
                Case("federation failing", (("up", _const(0, m + 10)),), (m + 5) * 60, (labels,)),
                Case("federation working", (("up", _const(1, m + 10)),), (m + 5) * 60, ()),
            ),
        ).with_labels("up", labels)
    labels = _host_labels()
    inventory = series_text(INVENTORY_HOST, labels)
    up = series_text("up", _host_labels(job="prometheus", instance=TEST_HOST))
    return Alert(
        "FlobsHostDown",
        host_down_expr(fleet),
        for_,
        "critical",
        "Host {{ $labels.host }} stopped sending metrics",
        "{{ $labels.host }} is in the inventory but its metrics have not reached the store "
        "for five minutes: the host, its local Prometheus or its remote_write path is down.",
        (
            # 10 samples, then nothing: the series goes stale after the 5m lookback,
            # and the alert holds however long the host stays away.
            Case(
                "host stops writing",
                ((inventory, _const(1, 10 + 5 + m + 130)), (up, f"1x10 _x{m + 130}")),
                (10 + 5 + m + 120) * 60,
                (labels,),
            ),
            Case(
                "host keeps writing",
                ((inventory, _const(1, m + 30)), (up, _const(1, m + 30))),
                (10 + 5 + m + 2) * 60,
                (),
            ),
        ),
    )


def _hosts_missing(fleet: Fleet, for_: str) -> Alert:
    # The alert reads the `cluster:hosts_reporting:count` recording rule, so its unit
    # test feeds that one series instead of one `up` per host: promtool's test engine
    # refuses queries over 10,000 samples, and the test must not grow with the fleet.
    n = len(fleet.hosts)
    m = _minutes(for_)

    def reporting(count: int) -> tuple[str, str]:
        return series_text(HOSTS_REPORTING, {"cluster": TEST_CLUSTER}), _const(count, m + 10)

    return Alert(
        "FlobsHostsMissing",
        f"(sum({HOSTS_REPORTING}) or vector(0)) < {n}",
        for_,
        "critical",
        f"Fewer hosts report to the centre than the inventory's {n}",
        f"The inventory lists {n} host(s) but fewer report to the central Prometheus. "
        "A host is missing from central/targets/*.json (not deployed), or its series "
        "never arrive. Compare the targets page with the inventory.",
        (
            Case("one host missing", (reporting(n - 1),), (m + 5) * 60, ({},)),
            Case("every host present", (reporting(n),), (m + 5) * 60, ()),
        ),
        per_host=False,
    )


def _flintlockd_down(for_: str) -> Alert:
    m = _minutes(for_)
    labels = _host_labels(job="flintlockd", instance=TEST_HOST)
    return Alert(
        "FlintlockdDown",
        'up{job="flintlockd"} == 0',
        for_,
        "critical",
        "flintlockd on {{ $labels.host }} does not answer its metrics scrape",
        "The local Prometheus on {{ $labels.host }} cannot scrape flintlockd's debug "
        "endpoint: flintlockd is down, hung, or was restarted without --debug-endpoint. "
        "No microVM can be created, changed or deleted on this host while it is down.",
        (
            Case("scrape failing", (("up", _const(0, m + 10)),), (m + 5) * 60, (labels,)),
            Case("scrape working", (("up", _const(1, m + 10)),), (m + 5) * 60, ()),
        ),
    ).with_labels("up", labels)


def _flintlockd_restarting(threshold: float, window: str) -> Alert:
    need = max(1, math.ceil(threshold))
    window_s = int(seconds(window))
    # Space the restarts so that `need` of them fit well inside the window.
    step = max(1, window_s // (need + 2))
    steps_after = window_s // step + 2
    start = 1_700_000_000
    restarting = " ".join(str(start + i * step) for i in range(need + 1))
    restarting += f" {start + need * step}x{steps_after}"
    eval_s = (need + 1) * step
    labels = _host_labels(groupname="flintlockd")
    name = "host:process_start_time_seconds:max"
    return Alert(
        "FlintlockdRestarting",
        f'changes({name}{{groupname="flintlockd"}}[{window}]) >= {threshold:g}',
        "0m",
        "warning",
        "flintlockd on {{ $labels.host }} restarted repeatedly",
        f"flintlockd's process start time on {{{{ $labels.host }}}} changed at least "
        f"{threshold:g} times in {window}: it is crash-looping (systemd restarts it, "
        "Restart=always). Reconciliation of microVMs stalls between restarts.",
        (
            Case("crash loop", ((name, restarting),), eval_s, (labels,), step),
            Case(
                "steady process", ((name, _const(start, steps_after + need + 1)),), eval_s, (), step
            ),
        ),
    ).with_labels(name, labels)


def _grpc_errors(ratio: float, for_: str) -> Alert:
    m = _minutes(for_)
    name = "host:grpc_server_handled:rate5m"
    base = _host_labels(
        grpc_service="microvm.services.api.v1alpha1.MicroVM", grpc_method="CreateMicroVM"
    )
    handled = f"host_method:grpc_server_errors:ratio_rate5m > {ratio:g}"
    cases: list[Case] = []
    if ratio < 1:
        # Twice the threshold (or every call) fails with Internal.
        bad = min(1.0, ratio * 2)
        cases.append(
            Case(
                "server errors above the threshold",
                (
                    (
                        series_text(name, {**base, "grpc_code": "OK"}),
                        _const((1 - bad) * 10, m + 10),
                    ),
                    (
                        series_text(name, {**base, "grpc_code": "Internal"}),
                        _const(bad * 10, m + 10),
                    ),
                ),
                (m + 5) * 60,
                (base,),
            )
        )
    half = ratio / 2
    cases.append(
        Case(
            "server errors below the threshold",
            (
                (series_text(name, {**base, "grpc_code": "OK"}), _const((1 - half) * 10, m + 10)),
                (
                    series_text(name, {**base, "grpc_code": "Unavailable"}),
                    _const(half * 10, m + 10),
                ),
            ),
            (m + 5) * 60,
            (),
        )
    )
    # Callers asking for what does not exist is not a server failure.
    cases.append(
        Case(
            "client errors (NotFound) do not count",
            (
                (series_text(name, {**base, "grpc_code": "OK"}), _const(1, m + 10)),
                (series_text(name, {**base, "grpc_code": "NotFound"}), _const(9, m + 10)),
            ),
            (m + 5) * 60,
            (),
        )
    )
    return Alert(
        "FlintlockdGrpcErrors",
        handled,
        for_,
        "warning",
        "flintlockd {{ $labels.grpc_method }} fails on {{ $labels.host }}",
        f"More than {ratio:.4g} of {{{{ $labels.grpc_method }}}} calls to flintlockd on "
        "{{ $labels.host }} end with a server-side gRPC error (Internal, Unavailable, "
        "Unknown, DeadlineExceeded, …). Client errors such as NotFound are not counted.",
        tuple(cases),
    )


def _create_microvm_slow(seconds: float, for_: str) -> Alert:
    """CreateMicroVM's p90 from flintlockd's spans (spanmetrics, host rules)."""
    m = _minutes(for_)
    name = RPC_DURATION
    base = _host_labels(rpc_method="CreateMicroVM")

    def buckets(shares: Mapping[str, float]) -> tuple[tuple[str, str], ...]:
        # Cumulative bucket rates: `shares[le]` of 10 calls/s took at most `le` seconds.
        return tuple(
            (series_text(name, {**base, "le": le}), _const(share * 10, m + 10))
            for le, share in shares.items()
        )

    # Every call slower than the threshold (p90 ~1.85x it) / every call well under it.
    slow = buckets({f"{seconds / 2:g}": 0.0, f"{seconds * 2:g}": 1.0, "+Inf": 1.0})
    fast = buckets({f"{seconds / 4:g}": 1.0, f"{seconds * 2:g}": 1.0, "+Inf": 1.0})
    quantile = (
        "histogram_quantile(0.9, sum by (cluster, host, le) "
        f'({name}{{rpc_method="CreateMicroVM"}}))'
    )
    return Alert(
        "FlintlockdCreateMicroVMSlow",
        f"{quantile} > {seconds:g}",
        for_,
        "warning",
        "Creating microVMs is slow on {{ $labels.host }}",
        f"The 90th percentile of CreateMicroVM calls on {{{{ $labels.host }}}} took longer "
        f"than {seconds:g} s for {for_} (from flintlockd's spans; flintlockd itself has no "
        "handling-time histogram). Look at the slowest traces' plan steps.",
        (
            Case(f"p90 above {seconds:g} s", slow, (m + 5) * 60, (_host_labels(),)),
            Case(f"p90 well under {seconds:g} s", fast, (m + 5) * 60, ()),
        ),
    )


def _vmm_panic(for_: str) -> Alert:
    m = _minutes(for_)
    name = "microvm:firecracker_vmm_panic_count:sum"
    labels = _host_labels(namespace="default", name="vm-1", uid="01TESTUID")
    return Alert(
        "FirecrackerVmmPanic",
        f"{name} > 0",
        for_,
        "critical",
        "Firecracker VMM panicked for microVM {{ $labels.namespace }}/{{ $labels.name }}",
        "Firecracker reported a VMM panic for microVM {{ $labels.namespace }}/"
        "{{ $labels.name }} (uid {{ $labels.uid }}) on {{ $labels.host }}. The microVM is "
        "dead or about to be; the value is the per-flush count Firecracker wrote.",
        (
            Case("panic in the last flush", ((name, f"0x5 1x{m + 10}"),), (m + 8) * 60, (labels,)),
            Case("no panic", ((name, _const(0, m + 10)),), (m + 8) * 60, ()),
        ),
    ).with_labels(name, labels)


def stale_window(fleet: Fleet, stale_after: str) -> str:
    """``stale_after``, raised to two flush intervals plus one minute of the slowest host.

    A healthy microVM's value changes once per flush (flintlock-facts.md: Firecracker
    flushes every flush_interval and each flush is a fresh delta); a window shorter
    than two flushes sees one value and calls a healthy guest stale.
    """
    flush = max((seconds(h.vars.flintlock_metrics.flush_interval) for h in fleet.hosts), default=60)
    need = math.ceil(2 * flush / 60) + 1
    return stale_after if seconds(stale_after) >= need * 60 else f"{need}m"


def _firecracker_stale(stale_after: str, for_: str) -> Alert:
    after, m = _minutes(stale_after), _minutes(for_)
    name = "microvm:firecracker_vcpu_exits:per_second"
    labels = _host_labels(namespace="default", name="vm-1", uid="01TESTUID")
    total = after + m + 10
    return Alert(
        "FirecrackerMetricsStale",
        f"changes({name}[{stale_after}]) == 0 and {name} > 0",
        for_,
        "warning",
        "Firecracker metrics of {{ $labels.namespace }}/{{ $labels.name }} are stale",
        "The vCPU exit counts of microVM {{ $labels.namespace }}/{{ $labels.name }} on "
        f"{{{{ $labels.host }}}} have not changed for {stale_after} (at least two flush "
        "intervals). flintlock still reports the microVM, so it looks running. "
        "Firecracker writes a new per-flush delta every flush, and a running guest's "
        "exits differ from flush to flush; identical values mean flintlock-metrics keeps "
        "re-reading the last line: Firecracker stopped flushing its metrics (hung VMM "
        "or broken metrics file).",
        (
            Case(
                "same values for too long",
                ((name, _const(12.5, total)),),
                (after + m + 5) * 60,
                (labels,),
            ),
            Case("values change every flush", ((name, f"10+1x{total}"),), (after + m + 5) * 60, ()),
            Case("idle guest with no exits", ((name, _const(0, total)),), (after + m + 5) * 60, ()),
        ),
    ).with_labels(name, labels)


def _up_alert(
    alertname: str, jobs: Sequence[str], for_: str, summary: str, description: str
) -> Alert:
    m = _minutes(for_)
    job_sel = f'job="{jobs[0]}"' if len(jobs) == 1 else f'job=~"{"|".join(jobs)}"'
    labels = _host_labels(job=jobs[0], instance=TEST_HOST)
    return Alert(
        alertname,
        f"up{{{job_sel}}} == 0",
        for_,
        "warning",
        summary,
        description,
        (
            Case("scrape failing", (("up", _const(0, m + 10)),), (m + 5) * 60, (labels,)),
            Case("scrape working", (("up", _const(1, m + 10)),), (m + 5) * 60, ()),
        ),
    ).with_labels("up", labels)


def _verification_failing(for_: str) -> Alert:
    m = _minutes(for_)
    ok = series_text("flobs_verify_ok", {"job": "flobs-verify", "instance": "verifier:9465"})
    up = series_text("up", {"job": "flobs-verify", "instance": "verifier:9465"})
    fires = ({"job": "flobs-verify", "instance": "verifier:9465"},)
    return Alert(
        "FlobsVerificationFailing",
        'flobs_verify_ok{job="flobs-verify"} == 0 or up{job="flobs-verify"} == 0',
        for_,
        "warning",
        "flobs verify has been failing for " + for_,
        "Continuous verification ({{ $labels.instance }}) reports missing or stale hosts or "
        "failing queries, or cannot be scraped: the fleet's observability is not what the "
        "inventory says. Its /metrics (flobs_verify_host_up, flobs_verify_freshness_seconds) "
        "name the hosts.",
        (
            Case(
                "verification failing",
                ((ok, _const(0, m + 10)), (up, _const(1, m + 10))),
                (m + 5) * 60,
                fires,
            ),
            Case("verifier down", ((up, _const(0, m + 10)),), (m + 5) * 60, fires),
            Case(
                "verification passing",
                ((ok, _const(1, m + 10)), (up, _const(1, m + 10))),
                (m + 5) * 60,
                (),
            ),
            Case(
                "failing for less than " + for_,
                ((ok, f"1x{m + 2} 0x3"), (up, _const(1, m + 10))),
                (m + 5) * 60,
                (),
            ),
        ),
    )


def _above(
    name: str,
    series: str,
    labels: Mapping[str, str],
    threshold: float,
    bad: float,
    good: float,
    for_: str,
    summary: str,
    description: str,
    *,
    severity: str = "warning",
    op: str = ">",
    per_host: bool = True,
    input_name: str | None = None,
    values: tuple[str, str] | None = None,
) -> Alert:
    """``series OP threshold`` for ``for_``: fires on ``bad``, stays quiet on ``good``.

    ``input_name`` is the metric the test feeds when ``series`` is an expression, and
    ``values`` replaces the constant ``bad``/``good`` inputs (counters, for rate()).
    """
    m = _minutes(for_)
    sel = series_text(input_name or series, labels)
    bad_values, good_values = values or (_const(bad, m + 10), _const(good, m + 10))
    return Alert(
        name,
        f"{series} {op} {threshold:g}",
        for_,
        severity,
        summary,
        description,
        (
            Case("over the threshold", ((sel, bad_values),), (m + 5) * 60, (labels,)),
            Case("within the threshold", ((sel, good_values),), (m + 5) * 60, ()),
        ),
        per_host=per_host,
    )


def _cluster_down(fleet: Fleet, ratio: float, for_: str) -> Alert:
    n = max(1, len(fleet.hosts))
    need = max(1, math.ceil(ratio * n - 1e-9))
    labels = {"cluster": TEST_CLUSTER}
    return _above(
        "FlobsClusterDown",
        f"{HOSTS_DOWN} / {n}",
        labels,
        ratio,
        need,
        need - 1,
        for_,
        f"At least {ratio:.0%} of the cluster's {n} host(s) are down",
        f"At least {ratio:.0%} of the inventory's {n} host(s) do not reach the centre: "
        "a network partition, the centre's own network, or a fleet-wide "
        "outage. Per-host alerts of this cluster are muted while this fires.",
        severity="critical",
        op=">=",
        per_host=False,
        input_name=HOSTS_DOWN,
    )


def _capacity_alerts(
    num: Callable[[str, str], float], dur: Callable[[str, str], str]
) -> list[Alert]:
    """Host capacity, after node-mixin (NodeFilesystemAlmostOutOfSpace, …)."""
    fs, inodes = (
        num("filesystem_free_ratio", "HostFilesystemAlmostFull"),
        num("inodes_free_ratio", "HostInodesAlmostExhausted"),
    )
    mem = num("memory_available_ratio", "HostMemoryLow")
    net, clock = (
        num("network_errors_per_second", "HostNetworkErrors"),
        num("clock_offset_seconds", "HostClockSkew"),
    )
    host = _host_labels()
    return [
        _above(
            "HostFilesystemAlmostFull",
            "host:node_filesystem_usage:ratio_max",
            host,
            round(1 - fs, 6),
            round(1 - fs / 2, 6),
            round(max(0.0, 1 - fs * 2), 6),
            dur("filesystem_for", "HostFilesystemAlmostFull"),
            "A filesystem on {{ $labels.host }} is almost full",
            f"The fullest real filesystem on {{{{ $labels.host }}}} has less than {fs:.0%} "
            "space left: microVM images, snapshots and containerd's content store stop "
            "growing, and flintlockd cannot create microVMs.",
        ),
        _above(
            "HostInodesAlmostExhausted",
            "host:node_filesystem_files_usage:ratio_max",
            host,
            round(1 - inodes, 6),
            round(1 - inodes / 2, 6),
            round(max(0.0, 1 - inodes * 2), 6),
            dur("filesystem_for", "HostInodesAlmostExhausted"),
            "A filesystem on {{ $labels.host }} is running out of inodes",
            f"A real filesystem on {{{{ $labels.host }}}} has less than {inodes:.0%} of its "
            "inodes free: file creation fails although space is left.",
        ),
        _above(
            "HostMemoryLow",
            "host:node_memory_utilisation:ratio",
            host,
            round(1 - mem, 6),
            round(1 - mem / 2, 6),
            round(max(0.0, 1 - mem * 2), 6),
            dur("memory_for", "HostMemoryLow"),
            "{{ $labels.host }} is low on memory",
            f"Less than {mem:.0%} of {{{{ $labels.host }}}}'s memory is available: new "
            "microVMs cannot start and the OOM killer may end a running VMM.",
        ),
        _above(
            "HostNetworkErrors",
            "host:node_network_errors:rate5m",
            _host_labels(device="eth0"),
            net,
            net * 2 + 1,
            net / 2,
            dur("network_errors_for", "HostNetworkErrors"),
            "{{ $labels.device }} on {{ $labels.host }} has network errors",
            f"Interface {{{{ $labels.device }}}} on {{{{ $labels.host }}}} sees more than "
            f"{net:g} receive + transmit errors per second: a bad cable, NIC or driver, "
            "and the microVMs' traffic over it suffers.",
        ),
        _above(
            "HostClockSkew",
            "host:node_timex_offset_seconds:max_abs",
            host,
            clock,
            clock * 2 + 0.01,
            clock / 2,
            dur("clock_for", "HostClockSkew"),
            "The clock of {{ $labels.host }} is off",
            f"{{{{ $labels.host }}}}'s clock is more than {clock:g} s off its time source: "
            "TLS, logs and traces across hosts stop lining up.",
        ),
        _above(
            "HostClockNotSynchronising",
            "host:node_timex_sync_status:min",
            host,
            0,
            0,
            1,
            dur("clock_for", "HostClockNotSynchronising"),
            "The clock of {{ $labels.host }} is not synchronising",
            "The kernel reports {{ $labels.host }}'s clock as unsynchronised (NTP or "
            "chrony is not running or cannot reach a server); it will drift.",
            op="==",
        ),
    ]


def _pipeline_alerts(
    fleet: Fleet, num: Callable[[str, str], float], dur: Callable[[str, str], str]
) -> list[Alert]:
    """The telemetry pipeline itself, after prometheus-mixin."""
    mode = fleet.central.prometheus.mode
    host = _host_labels()
    out = [
        _above(
            "FlobsRuleEvaluationFailures",
            "host:prometheus_rule_evaluation_failures:rate5m",
            host,
            0,
            0.1,
            0,
            dur("rule_failures_for", "FlobsRuleEvaluationFailures"),
            "The local Prometheus on {{ $labels.host }} fails to evaluate rules",
            "Recording rules fail on {{ $labels.host }}, so the host: and microvm: series "
            "the centre reads are missing or stale. `promtool check rules` the host's "
            "rules file and read the local Prometheus' log.",
        ),
        _above(
            "FlobsSampleLimitHit",
            "host:prometheus_target_scrapes_exceeded_sample_limit:rate5m",
            host,
            0,
            0.1,
            0,
            dur("sample_limit_for", "FlobsSampleLimitHit"),
            "A scrape on {{ $labels.host }} exceeds its sample_limit",
            "A local scrape on {{ $labels.host }} returns more samples than its "
            "sample_limit, so Prometheus drops the whole scrape (usually "
            "flintlock-metrics with many microVMs): its panels and alerts go blind.",
        ),
    ]
    if mode == "remote_write":
        behind = num("remote_write_behind_seconds", "FlobsRemoteWriteBehind")
        out.append(
            _above(
                "FlobsRemoteWriteBehind",
                "host:prometheus_remote_storage_behind:seconds",
                host,
                behind,
                behind * 2,
                behind / 4,
                dur("remote_write_behind_for", "FlobsRemoteWriteBehind"),
                "remote_write from {{ $labels.host }} falls behind",
                f"The newest sample {{{{ $labels.host }}}} sent to the store is more than "
                f"{behind:g} s older than the newest it has: the store is slow or "
                "refusing writes, or the queue is too small. The centre's view of this host "
                "lags by that much.",
            )
        )
    else:
        ratio = num("federation_slow_ratio", "FlobsFederationSlow")
        timeout = seconds(fleet.central.prometheus.scrape_timeout)
        fed = _host_labels(job="federate", instance="192.0.2.1:9091")
        out += [
            _above(
                "FlobsFederationSlow",
                'scrape_duration_seconds{job="federate"}',
                fed,
                round(ratio * timeout, 3),
                timeout,
                ratio * timeout / 2,
                dur("federation_slow_for", "FlobsFederationSlow"),
                "Federating {{ $labels.host }} is slow",
                f"The central federate scrape of {{{{ $labels.host }}}} takes more than "
                f'{ratio:.0%} of its {timeout:g} s timeout; past it the host turns "down". '
                "Too many series cross the wire, or the host or the path is overloaded.",
                input_name="scrape_duration_seconds",
            ),
            _above(
                "FlobsCentralRuleEvaluationFailures",
                CENTRAL_RULE_FAILURES,
                {"rule_group": "/etc/prometheus/rules/flobs-alerts.yml;flobs-alerts"},
                0,
                0.1,
                0,
                dur("rule_failures_for", "FlobsCentralRuleEvaluationFailures"),
                "The central Prometheus fails to evaluate rules",
                "Central recording or alerting rules fail: alerts built on them cannot fire. "
                "`promtool check rules central/rules/*.yml` and read its log.",
                per_host=False,
            ),
            _above(
                "FlobsCentralSampleLimitHit",
                CENTRAL_SAMPLE_LIMIT,
                {},
                0,
                0.1,
                0,
                dur("sample_limit_for", "FlobsCentralSampleLimitHit"),
                "A central federate scrape exceeds its sample_limit",
                "A host sends more federated samples than the federate job's sample_limit, "
                "so the central drops the whole scrape and that host looks down "
                "(FlobsHostDown). Look for a cardinality explosion on the host.",
                per_host=False,
            ),
        ]
    return out


def _vmm_mismatch(for_: str) -> Alert:
    m = _minutes(for_)
    procs = "host:process_count:sum"
    labels = _host_labels()
    fc = series_text(procs, {**labels, "groupname": "firecracker"})
    vms = series_text("host:microvms:count", labels)
    return Alert(
        "FlintlockVmmProcessMismatch",
        f'sum by (cluster, host) ({procs}{{groupname=~"firecracker|cloud-hypervisor"}}) '
        "!= sum by (cluster, host) (host:microvms:count)",
        for_,
        "warning",
        "VMM processes and microVMs disagree on {{ $labels.host }}",
        "The number of Firecracker and Cloud Hypervisor processes process-exporter counts "
        "on {{ $labels.host }} differs from the number of microVMs flintlock-metrics reports: "
        "a VMM died under a microVM flintlock still calls running, a VMM outlived "
        "its microVM (leaked process), or the host runs a provider its inventory "
        "vars.providers does not list (process-exporter only counts listed ones).",
        (
            Case(
                "a VMM died",
                ((fc, _const(2, m + 10)), (vms, _const(3, m + 10))),
                (m + 5) * 60,
                (labels,),
            ),
            Case(
                "one VMM per microVM",
                ((fc, _const(3, m + 10)), (vms, _const(3, m + 10))),
                (m + 5) * 60,
                (),
            ),
        ),
    )


def alerts(fleet: Fleet) -> list[Alert]:
    a = fleet.central.alerts
    ext = fleet.extensions
    extra = (
        [_verification_failing(fleet.central.verify.failing_for)]
        if fleet.central.verify.enabled
        else []
    )

    # extensions.overrides.alerts: a per-alert `for`/threshold wins over central.alerts.
    def dur(key: str, alert: str) -> str:
        o = ext.alert_override(alert)
        return o.for_ if o is not None and o.for_ is not None else str(a.get(key))

    def num(key: str, alert: str) -> float:
        o = ext.alert_override(alert)
        return o.threshold if o is not None and o.threshold is not None else float(a.get(key))

    return apply_alert_overrides(
        fleet,
        [
            _host_down(fleet, dur("host_down_for", "FlobsHostDown")),
            _hosts_missing(fleet, dur("host_down_for", "FlobsHostsMissing")),
            _cluster_down(
                fleet,
                num("cluster_down_ratio", "FlobsClusterDown"),
                dur("host_down_for", "FlobsClusterDown"),
            ),
            _flintlockd_down(dur("flintlockd_down_for", "FlintlockdDown")),
            _flintlockd_restarting(
                num("flintlockd_restarts_threshold", "FlintlockdRestarting"),
                str(a.get("flintlockd_restarts_window")),
            ),
            _grpc_errors(
                num("grpc_error_ratio", "FlintlockdGrpcErrors"),
                dur("grpc_error_for", "FlintlockdGrpcErrors"),
            ),
            _create_microvm_slow(
                num("create_microvm_p90_seconds", "FlintlockdCreateMicroVMSlow"),
                dur("create_microvm_slow_for", "FlintlockdCreateMicroVMSlow"),
            ),
            _vmm_panic(dur("vmm_panic_for", "FirecrackerVmmPanic")),
            _firecracker_stale(
                stale_window(fleet, str(a.get("firecracker_stale_after"))),
                dur("firecracker_stale_for", "FirecrackerMetricsStale"),
            ),
            replace(
                _up_alert(
                    "FlintlockMetricsDown",
                    ["flintlock-metrics"],
                    dur("firecracker_stale_for", "FlintlockMetricsDown"),
                    "flintlock-metrics on {{ $labels.host }} does not answer",
                    "The local Prometheus on {{ $labels.host }} cannot scrape "
                    "flintlock-metrics, so no microVM metrics of this host reach the centre "
                    "(every Firecracker and Cloud Hypervisor panel of the host is empty).",
                ),
                # Without flintlock-metrics, microVM staleness and counts mean nothing.
                inhibits=("FirecrackerMetricsStale", "FlintlockVmmProcessMismatch"),
            ),
            _vmm_mismatch(dur("vmm_mismatch_for", "FlintlockVmmProcessMismatch")),
            _up_alert(
                "LogShipperDown",
                ["promtail", "alloy"],
                dur("agent_down_for", "LogShipperDown"),
                "The log shipper on {{ $labels.host }} is down",
                "{{ $labels.job }} on {{ $labels.host }} does not answer its metrics scrape: "
                "flintlockd's logs from this host stop reaching Loki (the journal keeps them "
                "until the shipper catches up, within its max_age).",
            ),
            _up_alert(
                "OtelCollectorDown",
                ["otelcol"],
                dur("agent_down_for", "OtelCollectorDown"),
                "The OpenTelemetry Collector on {{ $labels.host }} is down",
                "The collector on {{ $labels.host }} does not answer its metrics scrape: "
                "traces from flintlockd on this host are dropped.",
            ),
            _up_alert(
                "HostExporterDown",
                ["node", "process", "containerd"],
                dur("agent_down_for", "HostExporterDown"),
                "{{ $labels.job }} exporter on {{ $labels.host }} is down",
                "The local Prometheus on {{ $labels.host }} cannot scrape {{ $labels.job }}: host "
                "pressure or flintlockd process panels and the restart alert go blind.",
            ),
            *_capacity_alerts(num, dur),
            *_pipeline_alerts(fleet, num, dur),
            *extra,
        ],
    )


# --------------------------------------------------------------------------- rendering


def _render_labels(template: str, labels: Mapping[str, str]) -> str:
    """What Prometheus makes of our templates: they only use ``{{ $labels.x }}``."""
    out = template
    for key, value in labels.items():
        out = out.replace(f"{{{{ $labels.{key} }}}}", value)
    # A label the alert does not carry renders as the empty string in Go templates.
    while "{{ $labels." in out:
        start = out.index("{{ $labels.")
        out = out[:start] + out[out.index("}}", start) + 2 :]
    return out


def go_literal(text: str) -> str:
    """``text`` as literal output of a Go template (Prometheus templates annotations)."""
    return text.replace("{{", '{{ "{{" }}')


def alert_annotations(alert: Alert, fleet: Fleet) -> dict[str, str]:
    return {
        "summary": alert.summary,
        "description": alert.description,
        # The URL comes from the inventory: a `{{` in it must not start a template action.
        "runbook_url": go_literal(alert.runbook(fleet)),
    }


def alert_rules(fleet: Fleet) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for alert in alerts(fleet):
        rule: dict[str, Any] = {"alert": alert.name, "expr": alert.expr}
        if seconds(alert.for_) > 0:
            rule["for"] = alert.for_
        rule["labels"] = {"severity": alert.severity}
        rule["annotations"] = alert_annotations(alert, fleet)
        rules.append(rule)
    return {"groups": [{"name": "flobs-alerts", "rules": rules}]}


def recording_file(fleet: Fleet) -> dict[str, Any]:
    groups: dict[str, list[dict[str, str]]] = {}
    for rule in recording_rules(fleet):
        groups.setdefault(rule.group, []).append({"record": rule.record, "expr": rule.expr})
    interval = fleet.central.prometheus.evaluation_interval
    return {
        "groups": [
            {"name": name, "interval": interval, "rules": items} for name, items in groups.items()
        ]
    }


def _hosts_reporting_test(fleet: Fleet) -> dict[str, Any]:
    """The recording rule behind FlobsHostsMissing counts hosts, up or down."""
    if fleet.central.prometheus.mode == "federation":

        def up(i: int, value: int) -> dict[str, str]:
            labels = _host_labels(job="federate", host=f"h{i}", instance=f"192.0.2.{i}:9091")
            return {"series": series_text("up", labels), "values": _const(value, 5)}
    else:

        def up(i: int, value: int) -> dict[str, str]:
            labels = _host_labels(job="prometheus", host=f"h{i}", instance=f"h{i}")
            return {"series": series_text("up", labels), "values": _const(value, 5)}

    return {
        "name": f"{HOSTS_REPORTING}: counts hosts whether up or down",
        "interval": "1m",
        "input_series": [up(1, 1), up(2, 0), up(3, 1)],
        "promql_expr_test": [
            {
                "expr": HOSTS_REPORTING,
                "eval_time": "2m",
                "exp_samples": [
                    {"labels": series_text(HOSTS_REPORTING, {"cluster": TEST_CLUSTER}), "value": 3}
                ],
            }
        ],
    }


def _hosts_down_tests(fleet: Fleet) -> list[dict[str, Any]]:
    """The recording rule behind FlobsClusterDown and the Hosts down stat: 1 down, then 0."""
    federation = fleet.central.prometheus.mode == "federation"

    def inputs(down: set[int]) -> list[dict[str, str]]:
        out = []
        for i in (1, 2, 3):
            if federation:
                labels = _host_labels(job="federate", host=f"h{i}", instance=f"192.0.2.{i}:9091")
                value = _const(0 if i in down else 1, 5)
                out.append({"series": series_text("up", labels), "values": value})
            else:
                out.append(
                    {
                        "series": series_text(INVENTORY_HOST, _host_labels(host=f"h{i}")),
                        "values": _const(1, 5),
                    }
                )
                if i not in down:
                    labels = _host_labels(job="prometheus", host=f"h{i}", instance=f"h{i}")
                    out.append({"series": series_text("up", labels), "values": _const(1, 5)})
        return out

    def case(name: str, down: set[int]) -> dict[str, Any]:
        return {
            "name": f"{HOSTS_DOWN}: {name}",
            "interval": "1m",
            "input_series": inputs(down),
            "promql_expr_test": [
                {
                    "expr": HOSTS_DOWN,
                    "eval_time": "2m",
                    "exp_samples": [
                        {
                            "labels": series_text(HOSTS_DOWN, {"cluster": TEST_CLUSTER}),
                            "value": len(down),
                        }
                    ],
                }
            ],
        }

    return [case("one host of three down", {2}), case("every host up", set())]


def _central_self_tests() -> list[dict[str, Any]]:
    """The central's own counters: 6 failures a minute are 0.1 per second."""
    own = {"job": "prometheus", "instance": "127.0.0.1:9090"}
    group = {"rule_group": "rules/flobs-alerts.yml;flobs-alerts"}
    return [
        {
            "name": "central self-monitoring recording rules",
            "interval": "1m",
            "input_series": [
                {
                    "series": series_text(
                        "prometheus_rule_evaluation_failures_total", {**own, **group}
                    ),
                    "values": "0+6x10",
                },
                {
                    "series": series_text(
                        "prometheus_target_scrapes_exceeded_sample_limit_total", own
                    ),
                    "values": "0+6x10",
                },
            ],
            "promql_expr_test": [
                {
                    "expr": CENTRAL_RULE_FAILURES,
                    "eval_time": "8m",
                    "exp_samples": [
                        {"labels": series_text(CENTRAL_RULE_FAILURES, group), "value": 0.1}
                    ],
                },
                {
                    "expr": CENTRAL_SAMPLE_LIMIT,
                    "eval_time": "8m",
                    "exp_samples": [{"labels": CENTRAL_SAMPLE_LIMIT, "value": 0.1}],
                },
            ],
        }
    ]


def _simple_record_tests(fleet: Fleet) -> list[dict[str, Any]]:
    """Recording rules no alert reads: each gets one exact evaluation."""
    if fleet.central.prometheus.mode == "federation":
        ups = [
            (_host_labels(job="federate", host=f"h{i}", instance=f"192.0.2.{i}:9091"), v)
            for i, v in ((1, 1), (2, 0), (3, 1))
        ]
    else:
        ups = [
            (_host_labels(job="prometheus", host=f"h{i}", instance=f"h{i}"), v)
            for i, v in ((1, 1), (2, 0), (3, 1))
        ]
    fleet_tests = {
        "name": "cluster:hosts_up:sum and cluster:microvms:sum",
        "interval": "1m",
        "input_series": [
            *({"series": series_text("up", labels), "values": _const(v, 5)} for labels, v in ups),
            {
                "series": series_text("host:microvms:count", _host_labels(host="h1")),
                "values": _const(3, 5),
            },
            {
                "series": series_text("host:microvms:count", _host_labels(host="h3")),
                "values": _const(4, 5),
            },
        ],
        "promql_expr_test": [
            {
                "expr": name,
                "eval_time": "2m",
                "exp_samples": [
                    {"labels": series_text(name, {"cluster": TEST_CLUSTER}), "value": value}
                ],
            }
            for name, value in (("cluster:hosts_up:sum", 2), ("cluster:microvms:sum", 7))
        ],
    }
    handled = "host:grpc_server_handled:rate5m"
    method = {"grpc_method": "M", "grpc_service": "svc"}
    base = _host_labels(**method)
    cluster = {"cluster": TEST_CLUSTER}
    return [
        {
            "name": "fleet-wide gRPC recording rules",
            "interval": "1m",
            "input_series": [
                {"series": series_text(handled, {**base, "grpc_code": "OK"}), "values": "9x5"},
                {
                    "series": series_text(handled, {**base, "grpc_code": "Internal"}),
                    "values": "1x5",
                },
            ],
            "promql_expr_test": [
                {
                    "expr": "method:grpc_server_errors:ratio_rate5m",
                    "eval_time": "2m",
                    "exp_samples": [
                        {
                            "labels": series_text(
                                "method:grpc_server_errors:ratio_rate5m",
                                {**cluster, **method},
                            ),
                            "value": 0.1,
                        }
                    ],
                },
                {
                    "expr": "method:grpc_server_handled:rate5m",
                    "eval_time": "2m",
                    "exp_samples": [
                        {
                            "labels": series_text(
                                "method:grpc_server_handled:rate5m",
                                {**cluster, "grpc_code": code, **method},
                            ),
                            "value": value,
                        }
                        for code, value in (("Internal", 1), ("OK", 9))
                    ],
                },
            ],
        },
        fleet_tests,
    ]


def unit_tests(fleet: Fleet) -> dict[str, Any]:
    tests: list[dict[str, Any]] = []
    for alert in alerts(fleet):
        for case in alert.cases:
            exp_alerts = []
            for fired in case.fires:
                labels = {**fired, "severity": alert.severity}
                exp_alerts.append(
                    {
                        "exp_labels": labels,
                        "exp_annotations": {
                            "summary": _render_labels(alert.summary, labels),
                            "description": _render_labels(alert.description, labels),
                            "runbook_url": alert.runbook(fleet),
                        },
                    }
                )
            tests.append(
                {
                    "name": f"{alert.name}: {case.name}",
                    "interval": f"{case.interval_seconds}s",
                    "input_series": [{"series": s, "values": v} for s, v in case.series],
                    "alert_rule_test": [
                        {
                            "eval_time": f"{case.eval_seconds}s",
                            "alertname": alert.name,
                            "exp_alerts": exp_alerts,
                        }
                    ],
                }
            )
    tests.append(_hosts_reporting_test(fleet))
    tests.extend(_hosts_down_tests(fleet))
    tests.extend(_simple_record_tests(fleet))
    if fleet.central.prometheus.mode == "federation":
        tests.extend(_central_self_tests())
    return {
        # Relative to this file, so the generated tree is self-contained.
        "rule_files": ["../rules/flobs-recording.yml", "../rules/flobs-alerts.yml"],
        "evaluation_interval": "1m",
        "tests": tests,
    }


def inventory_rules(fleet: Fleet) -> dict[str, Any]:
    """One constant series per inventory host (with its labels), for remote_write mode."""
    rules = [
        {
            "record": INVENTORY_HOST,
            "expr": "vector(1)",
            "labels": {**dict(host.labels), "cluster": fleet.cluster, "host": host.name},
        }
        for host in sorted(fleet.hosts, key=lambda h: h.name)
    ]
    interval = fleet.central.prometheus.evaluation_interval
    return {"groups": [{"name": "flobs-inventory", "interval": interval, "rules": rules}]}


def inventory_tests(fleet: Fleet) -> dict[str, Any]:
    n = len(fleet.hosts)
    first = min(fleet.hosts, key=lambda h: h.name)
    first_labels = {**dict(first.labels), "cluster": fleet.cluster, "host": first.name}
    return {
        "rule_files": ["../rules/flobs-inventory.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": f"{INVENTORY_HOST}: one series per inventory host",
                "interval": "1m",
                "input_series": [],
                "promql_expr_test": [
                    {
                        "expr": f"count({INVENTORY_HOST})",
                        "eval_time": "1m",
                        "exp_samples": [{"labels": "{}", "value": n}],
                    },
                    {
                        "expr": series_text(INVENTORY_HOST, {"host": first.name}),
                        "eval_time": "1m",
                        "exp_samples": [
                            {
                                "labels": series_text(INVENTORY_HOST, first_labels),
                                "value": 1,
                            }
                        ],
                    },
                ],
            }
        ],
    }


def fleet_files(fleet: Fleet) -> dict[str, bytes]:
    # The version line picks the promtool that checks these files (flobs.versions).
    for_version = "\n" + versions.header_line(fleet.central.prometheus.version)
    files: dict[str, bytes] = {}
    if fleet.central.prometheus.mode == "remote_write" and fleet.hosts:
        files[INVENTORY_FILE] = yaml_file(
            fleet,
            "The inventory's hosts as series: FlobsHostDown compares them with what the "
            "store receives." + for_version,
            inventory_rules(fleet),
        )
        files[INVENTORY_TESTS_FILE] = yaml_file(
            fleet,
            "promtool unit test of the inventory series: promtool test rules "
            "central/tests/flobs-inventory.test.yml" + for_version,
            inventory_tests(fleet),
        )
    return files | {
        RECORDING_FILE: yaml_file(
            fleet,
            "Central recording rules: what the flobs dashboards and alerts aggregate."
            + for_version,
            recording_file(fleet),
        ),
        ALERTS_FILE: yaml_file(
            fleet,
            "Central alerts for the Flintlock fleet; runbooks in docs/runbooks/." + for_version,
            alert_rules(fleet),
        ),
        TESTS_FILE: yaml_file(
            fleet,
            "promtool unit tests for every alert: promtool test rules "
            "central/tests/flobs-alerts.test.yml" + for_version,
            unit_tests(fleet),
        ),
    }
