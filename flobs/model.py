"""The typed, immutable description of a fleet, built from the inventory.

Everything downstream (artifacts, checks, simulator, verify) reads this model and
never the raw YAML. Values here are already merged (built-in defaults < ``defaults``
< groups in host order < host ``vars``) and validated.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})
OTELCOL_LISTENERS = (
    "grpc_endpoint",
    "http_endpoint",
    "health_endpoint",
    "metrics_endpoint",
    "spanmetrics_endpoint",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ``host:port`` listener or target. ``host`` may be an IP, a name, or empty (all)."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:  # IPv6 literal
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host.lower() in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def is_wildcard(self) -> bool:
        return self.host in ("", "0.0.0.0", "::")  # noqa: S104 - we are naming it, not binding

    def with_host(self, host: str) -> Endpoint:
        return Endpoint(host, self.port)

    @staticmethod
    def parse(text: str) -> Endpoint | None:
        """``host:port`` or ``[v6]:port`` (``:port`` is all addresses); None otherwise.

        The one endpoint grammar: the inventory, the checks and the demo all read
        listeners and targets with it. A bare IPv6 address with a port (``::1:9090``)
        is not an endpoint, as for Prometheus and Go's net.SplitHostPort.
        """
        m = _ENDPOINT.fullmatch(text)
        if m is None:
            return None
        host = m.group("v6") if m.group("v6") is not None else m.group("host")
        return Endpoint(host, int(m.group("port")))


_ENDPOINT = re.compile(
    r"(?:\[(?P<v6>[0-9a-fA-F:.%A-Za-z]+)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})"
)


@dataclass(frozen=True, slots=True)
class FileAuth:
    """Credentials that live in files on the target machine; only paths are ever rendered."""

    bearer_token_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False
    server_name: str | None = None  # tls_config.server_name: the name the certificate has

    @property
    def sends_credentials(self) -> bool:
        """A bearer token or basic-auth password goes with every request."""
        return bool(self.bearer_token_file or self.username)


@dataclass(frozen=True, slots=True)
class Flintlockd:
    grpc_endpoint: Endpoint
    http_endpoint: Endpoint
    # --debug-endpoint; None means flintlockd serves no /metrics (flintlock-facts.md).
    metrics_endpoint: Endpoint | None
    sample_limit: int


@dataclass(frozen=True, slots=True)
class FlintlockMetrics:
    enabled: bool
    endpoint: Endpoint
    path: str
    # Firecracker flushes its metrics file every 60 s, as per-flush deltas.
    flush_interval: str
    sample_limit: int


@dataclass(frozen=True, slots=True)
class Exporter:
    """node_exporter or process-exporter on the host."""

    enabled: bool
    endpoint: Endpoint
    sample_limit: int
    allow_public: bool
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # How the local Prometheus verifies the exporter's certificate (a private CA).
    tls_ca_file: str | None = None
    tls_server_name: str | None = None


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A Prometheus web config (exporter-toolkit): TLS and basic auth for a listener."""

    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    client_ca_file: str | None = None
    # user -> bcrypt hash, read by the inventory loader from files the user keeps
    basic_auth_users: tuple[tuple[str, str], ...] = ()
    # What the local Prometheus scrapes itself with when users are required.
    self_username: str | None = None
    self_password_file: str | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


@dataclass(frozen=True, slots=True)
class LocalPrometheus:
    listen: Endpoint
    retention: str
    version: str  # the Prometheus version deployed on the host, e.g. "2.42"
    storage_path: str = "/var/lib/prometheus/metrics2"
    web: WebConfig | None = None  # None: plain HTTP, no authentication


@dataclass(frozen=True, slots=True)
class Logs:
    agent: Literal["promtail", "alloy"]
    source: Literal["journal", "file"]
    unit: str
    path: str
    listen: Endpoint  # the agent's own HTTP server (metrics, readiness)
    positions_dir: str
    allow_public: bool


@dataclass(frozen=True, slots=True)
class Otelcol:
    enabled: bool
    version: tuple[int, int, int]  # the collector release on the host, e.g. (0, 158, 0)
    grpc_endpoint: Endpoint
    http_endpoint: Endpoint
    health_endpoint: Endpoint
    metrics_endpoint: Endpoint
    spanmetrics_endpoint: Endpoint  # request metrics derived from spans (Prometheus exporter)
    memory_limit_mib: int
    memory_spike_limit_mib: int
    sampling_percentage: float | None
    logs_pipeline: bool
    allow_public: bool


@dataclass(frozen=True, slots=True)
class ExtraScrapeJob:
    """A scrape job the inventory adds to a host's local Prometheus (extensions)."""

    name: str
    # The complete scrape_config (job_name and flobs' limits filled in) as canonical JSON:
    # the model stays immutable and hashable whatever shape the user's config has.
    config_json: str
    federate: tuple[str, ...]  # metric names or name regexes that must reach the centre
    var_path: tuple[str, ...]  # inside vars, for error positions

    @property
    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.config_json)
        return loaded


@dataclass(frozen=True, slots=True)
class HostVars:
    scrape_interval: str
    scrape_timeout: str
    evaluation_interval: str
    providers: tuple[str, ...]
    flintlockd: Flintlockd
    flintlock_metrics: FlintlockMetrics
    node_exporter: Exporter
    process_exporter: Exporter
    containerd_metrics_endpoint: Endpoint | None
    local_prometheus: LocalPrometheus
    logs: Logs
    otelcol: Otelcol
    extra_scrape_jobs: tuple[ExtraScrapeJob, ...] = ()


@dataclass(frozen=True, slots=True)
class Listener:
    """One port a host's processes listen on, for collision checks and firewall docs."""

    owner: str  # e.g. "flintlockd.grpc_endpoint"
    endpoint: Endpoint
    var_path: tuple[str, ...]  # where it is set inside vars, for error positions


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    address: str
    groups: tuple[str, ...]
    # cluster/host are not in here; these are the merged group + host labels, sorted.
    labels: tuple[tuple[str, str], ...]
    vars: HostVars
    index: int  # position in the inventory's host list

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def log_agent(self) -> str | None:
        """The log shipper this host runs: none when the OTel Collector ships the logs
        (otelcol.logs_pipeline), since running both would send every line twice."""
        if self.vars.otelcol.enabled and self.vars.otelcol.logs_pipeline:
            return None
        return self.vars.logs.agent

    @property
    def federation_target(self) -> str:
        """How the central reaches this host's local Prometheus."""
        return str(Endpoint(self.address, self.vars.local_prometheus.listen.port))

    def listeners(self) -> list[Listener]:
        v = self.vars
        out = [
            Listener(
                "flintlockd.grpc_endpoint",
                v.flintlockd.grpc_endpoint,
                ("flintlockd", "grpc_endpoint"),
            ),
            Listener(
                "flintlockd.http_endpoint",
                v.flintlockd.http_endpoint,
                ("flintlockd", "http_endpoint"),
            ),
        ]
        if v.flintlockd.metrics_endpoint is not None:
            out.append(
                Listener(
                    "flintlockd.metrics_endpoint",
                    v.flintlockd.metrics_endpoint,
                    ("flintlockd", "metrics_endpoint"),
                )
            )
        if v.flintlock_metrics.enabled:
            out.append(
                Listener(
                    "flintlock_metrics.endpoint",
                    v.flintlock_metrics.endpoint,
                    ("flintlock_metrics", "endpoint"),
                )
            )
        if v.node_exporter.enabled:
            out.append(
                Listener(
                    "node_exporter.endpoint",
                    v.node_exporter.endpoint,
                    ("node_exporter", "endpoint"),
                )
            )
        if v.process_exporter.enabled:
            out.append(
                Listener(
                    "process_exporter.endpoint",
                    v.process_exporter.endpoint,
                    ("process_exporter", "endpoint"),
                )
            )
        if v.containerd_metrics_endpoint is not None:
            out.append(
                Listener(
                    "containerd.metrics_endpoint",
                    v.containerd_metrics_endpoint,
                    ("containerd", "metrics_endpoint"),
                )
            )
        out.append(
            Listener(
                "local_prometheus.listen", v.local_prometheus.listen, ("local_prometheus", "listen")
            )
        )
        if self.log_agent is not None:
            out.append(Listener("logs.listen", v.logs.listen, ("logs", "listen")))
        if v.otelcol.enabled:
            for key in OTELCOL_LISTENERS:
                out.append(Listener(f"otelcol.{key}", getattr(v.otelcol, key), ("otelcol", key)))
        return out


@dataclass(frozen=True, slots=True)
class RemoteWrite:
    url: str
    auth: FileAuth
    # Prometheus queue_config; None leaves Prometheus' default.
    max_samples_per_send: int
    capacity: int
    max_shards: int


@dataclass(frozen=True, slots=True)
class CentralPrometheus:
    listen: Endpoint
    url: str  # how Grafana and `flobs verify` reach it
    scrape_interval: str
    scrape_timeout: str
    evaluation_interval: str
    version: str
    mode: Literal["federation", "remote_write"]
    remote_write: RemoteWrite | None
    extra_match: tuple[str, ...]  # user additions to the federation allow-list
    retention: str
    storage_path: str = "/var/lib/prometheus/metrics2"
    # How the federate job reaches the hosts: CA, client cert, server name, basic auth.
    federation_auth: FileAuth = field(default_factory=FileAuth)


LogsBackend = Literal["loki", "victorialogs"]
TracesBackend = Literal["tempo", "jaeger"]
# Grafana datasource type per backend: Jaeger is a core datasource; VictoriaLogs needs
# its plugin (grafana-cli plugins install victoriametrics-logs-datasource).
LOGS_DATASOURCE_TYPES: dict[str, str] = {
    "loki": "loki",
    "victorialogs": "victoriametrics-logs-datasource",
}
TRACES_DATASOURCE_TYPES: dict[str, str] = {"tempo": "tempo", "jaeger": "jaeger"}


@dataclass(frozen=True, slots=True)
class LogStore:
    """The central log store: Loki, or VictoriaLogs (which also takes the Loki push API)."""

    backend: LogsBackend
    url: str  # Loki push API URL (VictoriaLogs: its /insert/loki/api/v1/push)
    query_url: str  # base URL of the query API, what Grafana and flobs query
    tenant: str | None
    auth: FileAuth

    @property
    def otlp_logs_url(self) -> str:
        """Full OTLP/HTTP logs URL: Loki 3 serves ``/otlp/v1/logs`` under its base URL,
        VictoriaLogs ``/insert/opentelemetry/v1/logs`` (real-components.md)."""
        if self.backend == "victorialogs":
            return self.query_url.rstrip("/") + "/insert/opentelemetry/v1/logs"
        return self.query_url.rstrip("/") + "/otlp/v1/logs"

    def tenant_headers(self) -> dict[str, str]:
        """HTTP headers that select the tenant (none when there is no tenant)."""
        if not self.tenant:
            return {}
        if self.backend == "victorialogs":
            account, _, project = self.tenant.partition(":")
            return {"AccountID": account, **({"ProjectID": project} if project else {})}
        return {"X-Scope-OrgID": self.tenant}


@dataclass(frozen=True, slots=True)
class Traces:
    backend: TracesBackend
    otlp_endpoint: str
    insecure: bool  # plaintext gRPC to the central collector/Tempo (explicit opt-in)
    auth: FileAuth
    # OTLP header name -> environment variable holding its value (never the value itself)
    headers_from_env: tuple[tuple[str, str], ...]
    query_url: str  # the store's HTTP query API (Tempo :3200, Jaeger :16686)


@dataclass(frozen=True, slots=True)
class DatasourceRef:
    uid: str
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class Grafana:
    url: str
    folder: str
    folder_uid: str
    prometheus: DatasourceRef
    logs: DatasourceRef  # Loki or VictoriaLogs, after central.logs.backend
    traces: DatasourceRef  # Tempo or Jaeger, after central.traces.backend
    # Where the Grafana server reads the dashboard JSON files (file provisioning).
    dashboards_path: str = "/var/lib/grafana/dashboards/flobs"


@dataclass(frozen=True, slots=True)
class Alerts:
    """Thresholds and durations for central alert rules (defaults in the schema)."""

    values: tuple[tuple[str, str | float], ...]

    def get(self, key: str) -> str | float:
        return dict(self.values)[key]


IntegrationKind = Literal["webhook", "email", "slack", "pagerduty", "opsgenie"]


@dataclass(frozen=True, slots=True)
class Integration:
    """One notifier of a receiver; its settings as the schema checked them.

    Secrets are only ever ``*_file`` paths (the schema has no key for an inline one).
    """

    kind: IntegrationKind
    settings: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Receiver:
    name: str
    integrations: tuple[Integration, ...]


@dataclass(frozen=True, slots=True)
class AlertRoute:
    receiver: str
    # Alert labels matched as they are (severity, alertname, cluster …).
    match: tuple[tuple[str, str], ...]
    # Inventory host labels (team, zone …) the route selects, and the hosts that carry
    # them: aggregated alerts do not keep inventory labels, but every per-host alert
    # keeps `host`, so such a route matches the host names. None: any host.
    host_labels: tuple[tuple[str, str], ...]
    hosts: tuple[str, ...] | None
    continue_: bool
    group_by: tuple[str, ...] | None
    repeat_interval: str | None


@dataclass(frozen=True, slots=True)
class Alertmanager:
    """Where alerts go: external Alertmanagers (``generated`` False) or flobs' own config."""

    urls: tuple[str, ...]  # what Prometheus and vmalert notify
    generated: bool
    listen: Endpoint
    version: str
    auth: FileAuth  # Prometheus/vmalert -> Alertmanager
    group_by: tuple[str, ...]
    group_wait: str
    group_interval: str
    repeat_interval: str
    resolve_timeout: str
    receivers: tuple[Receiver, ...]
    default_receiver: str
    routes: tuple[AlertRoute, ...]
    inhibit: bool
    vmalert_listen: Endpoint
    # Gossip of the generated Alertmanager; no peers: off (--cluster.listen-address=).
    cluster_listen: Endpoint
    cluster_peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContinuousVerify:
    """``central.verify``: the centre scrapes ``flobs verify --every`` and alerts on it."""

    enabled: bool
    listen: str  # host:port of the verifier's /metrics
    failing_for: str


@dataclass(frozen=True, slots=True)
class Central:
    prometheus: CentralPrometheus
    logs: LogStore
    traces: Traces
    grafana: Grafana
    alerts: Alerts
    runbook_base_url: str
    verify: ContinuousVerify
    alertmanager: Alertmanager | None = None


@dataclass(frozen=True, slots=True)
class UserFile:
    """A file the inventory brings along (extensions), copied into OUT as the user wrote it."""

    path: str  # where it goes in OUT
    source: str  # where it came from, relative to the inventory
    kind: Literal["rules", "rules-test", "dashboard"]
    data: bytes


@dataclass(frozen=True, slots=True)
class PanelOverride:
    dashboard: str  # uid
    panel: str  # title as flobs ships it
    disable: bool = False
    title: str | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class AlertOverride:
    alert: str
    disable: bool = False
    for_: str | None = None
    severity: str | None = None
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class Validation:
    """How `flobs validate` judges OUT (inventory `validation:`; carried in manifest.json)."""

    disable: tuple[str, ...] = ()
    ignore: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (glob, check ids; empty = all)
    unmanaged: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Extensions:
    user_files: tuple[UserFile, ...] = ()
    panel_overrides: tuple[PanelOverride, ...] = ()
    alert_overrides: tuple[AlertOverride, ...] = ()
    validation: Validation = Validation()

    def panel_override(self, dashboard: str, panel: str) -> PanelOverride | None:
        for o in self.panel_overrides:
            if o.dashboard == dashboard and o.panel == panel:
                return o
        return None

    def alert_override(self, alert: str) -> AlertOverride | None:
        for o in self.alert_overrides:
            if o.alert == alert:
                return o
        return None


@dataclass(frozen=True, slots=True)
class HostCentral:
    """The parts of ``central`` a host's own files point at."""

    prometheus: CentralPrometheus  # federation or remote_write, and what crosses the wire
    logs: LogStore
    traces: Traces


@dataclass(frozen=True, slots=True)
class HostScope:
    """Everything fleet-wide a host's files may read: host renderers get this and the
    ``Host``, never the ``Fleet``.

    ``flobs generate`` skips a host whose digest of (scope, host) is the one the
    manifest recorded, so a renderer must read nothing else: with the fleet out of
    reach, a renderer that needs more has to add a field here, and the digest covers
    every field (``flobs.incremental.canonical``).
    """

    cluster: str
    central: HostCentral
    # job name -> the metric-name regexes it sends to the centre, over every host
    # (remote_write keeps them by name on each host).
    extra_jobs_produce: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)  # no slots: `_by_name` caches in the instance dict
class Fleet:
    api_version: str
    cluster: str
    hosts: tuple[Host, ...]
    central: Central
    groups: tuple[str, ...] = field(default=())
    source_name: str = "inventory.yaml"  # the inventory's file name, never an absolute path
    source_sha256: str = ""
    extensions: Extensions = Extensions()

    @cached_property
    def _by_name(self) -> dict[str, Host]:
        return {h.name: h for h in self.hosts}

    @cached_property
    def host_scope(self) -> HostScope:
        produce: dict[str, list[str]] = {}
        for host in self.hosts:
            for job in host.vars.extra_scrape_jobs:
                names = produce.setdefault(job.name, [])
                names.extend(n for n in job.federate if n not in names)
        return HostScope(
            cluster=self.cluster,
            central=HostCentral(self.central.prometheus, self.central.logs, self.central.traces),
            extra_jobs_produce=tuple((job, tuple(names)) for job, names in sorted(produce.items())),
        )

    def host(self, name: str) -> Host:
        """The host called ``name`` (O(1): checks call this once per host per file)."""
        return self._by_name[name]
