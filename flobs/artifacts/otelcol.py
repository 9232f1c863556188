"""OpenTelemetry Collector per host: OTLP in on loopback, OTLP out to the centre.

Facts relied on (flintlock-facts.md, grafana-api.md):
* flintlockd and the CAPMVM controller would send OTLP to a collector on the same
  host (``localhost:4317`` gRPC, ``localhost:4318`` HTTP).
* ``memory_limiter`` must run first (it refuses data before anything buffers it),
  samplers next, ``batch`` last (batching before sampling would batch dropped spans).
  From v0.160 batching moves into the exporter's ``sending_queue`` instead.
* Traces go over OTLP/gRPC to the trace store (Tempo or Jaeger), logs over OTLP/HTTP
  to the log store (Loki ``/otlp``, VictoriaLogs ``/insert/opentelemetry``): a trace
  store has no OTLP logs service, so the two never share an exporter.
* The collector's internal metrics are served by a pull Prometheus reader
  (``service.telemetry.metrics.readers``), scraped by the host's local Prometheus.

Value expansion: the collector expands ``${VAR}``, ``${env:VAR}`` and ``${file:…}`` in
every string of its config, and ``$$`` stands for a literal ``$``. So every ``$``
in a value we write is doubled, except the references we mean (:class:`Expand`).
Secrets are never inline: headers are ``${env:VAR}`` references, tokens and
passwords are read from files by the collector.

The components used (``resource``, ``probabilistic_sampler``, ``journald``,
``filelog``, ``bearertokenauth``, ``basicauth``) ship in the ``otelcol-contrib``
distribution and in flobs' test build (tools/otelcol). No storage extension is used:
after a restart the journal and file receivers resume at the end, so lines written
while the collector was down are not shipped (Promtail and Alloy keep positions).
"""

from __future__ import annotations

from typing import Any

from flobs.artifacts import promtail
from flobs.artifacts.common import yaml_file
from flobs.model import Endpoint, FileAuth, Host, HostScope


class Expand(str):
    """A string the collector must expand (``${env:VAR}``): its ``$`` stays single."""

    __slots__ = ()


def escape_dollars(data: Any) -> Any:
    """Double every ``$`` in every string (keys too), except :class:`Expand` values."""
    kind = type(data)  # exact types first: this walks every node of every host's config
    if kind is str:
        return data.replace("$", "$$")
    if kind is dict:
        return {escape_dollars(k): escape_dollars(v) for k, v in data.items()}
    if kind is list:
        return [escape_dollars(v) for v in data]
    if isinstance(data, Expand):
        return str(data)
    if isinstance(data, str):
        return data.replace("$", "$$")
    if isinstance(data, dict):
        return {escape_dollars(k): escape_dollars(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [escape_dollars(v) for v in data]
    return data


def env_ref(var: str) -> Expand:
    return Expand(f"${{env:{var}}}")


# The journald receiver and filelog parse the same logrus JSON: its fields become log
# attributes, `time` the timestamp, `level` the severity. logrus has a `panic` level
# the default severity mapping does not know (flintlock-facts.md); it ranks above
# `fatal` in logrus, so it maps to FATAL2. A line that is not JSON (a Go panic's
# stack, runtime output) is sent as it is (send_quiet) and keeps the read time.
GO_RFC3339 = "2006-01-02T15:04:05Z07:00"
SEVERITY_MAPPING = {"fatal2": "panic"}

# Collector releases that change what we write (real-components.md):
# v0.144 renamed the OTLP exporters (`otlp` → `otlp_grpc`, `otlphttp` → `otlp_http`;
# the old names are deprecated aliases that warn at every start), and v0.160
# deprecated the `batch` processor in favour of batching in the exporter's queue.
NEW_EXPORTER_NAMES = (0, 144, 0)
QUEUE_BATCHING = (0, 160, 0)

TRACES_EXPORTER = "traces"  # instance names: otlp_grpc/traces, otlp_http/logs
LOGS_EXPORTER = "logs"
# flintlockd is the service every span and log line of a host's collector comes from;
# Loki 3 derives `service_name` from `service.name` (otherwise from the first label).
SERVICE_NAME = "flintlockd"


def exporter_types(version: tuple[int, int, int]) -> tuple[str, str]:
    """The (gRPC, HTTP) OTLP exporter type names this collector release knows."""
    if version >= NEW_EXPORTER_NAMES:
        return "otlp_grpc", "otlp_http"
    return "otlp", "otlphttp"


def queue_batching(version: tuple[int, int, int]) -> bool:
    return version >= QUEUE_BATCHING


def _json_operator() -> dict[str, Any]:
    return {
        "type": "json_parser",
        "parse_from": "body",
        "parse_to": "attributes",
        "on_error": "send_quiet",
        "timestamp": {
            "parse_from": f"attributes.{promtail.TIME_FIELD}",
            "layout_type": "gotime",
            "layout": GO_RFC3339,
        },
        "severity": {"parse_from": "attributes.level", "mapping": SEVERITY_MAPPING},
    }


def _endpoint(e: Endpoint) -> str:
    return str(e)


def receivers(host: Host) -> dict[str, Any]:
    o = host.vars.otelcol
    logs = host.vars.logs
    out: dict[str, Any] = {
        "otlp": {
            "protocols": {
                "grpc": {"endpoint": _endpoint(o.grpc_endpoint)},
                "http": {"endpoint": _endpoint(o.http_endpoint)},
            }
        },
    }
    if o.logs_pipeline:
        if logs.source == "journal":
            out["journald"] = {
                "units": [logs.unit],
                "priority": "debug",
                "start_at": "end",
                # A journal entry arrives as a map of journal fields; flintlockd's line
                # is its MESSAGE, which becomes the body before the JSON is parsed.
                "operators": [
                    {"type": "move", "from": "body.MESSAGE", "to": "body"},
                    _json_operator(),
                ],
            }
        else:
            out[filelog_type(o.version)] = {
                "include": [logs.path],
                "start_at": "end",
                "operators": [_json_operator()],
            }
    return out


def log_resource(scope: HostScope, host: Host) -> list[dict[str, Any]]:
    """Resource attributes named like the labels/stream fields the dashboards query.

    Loki indexes them once its ``otlp_config`` lists them (docs/logs-and-traces.md);
    VictoriaLogs takes them as stream fields (``VL-Stream-Fields``).
    """
    attrs = {
        "cluster": scope.cluster,
        "host": host.name,
        "service.name": SERVICE_NAME,
    }
    if host.vars.logs.source == "journal":
        attrs["unit"] = host.vars.logs.unit
    return [{"key": k, "value": v, "action": "upsert"} for k, v in attrs.items()]


def log_stream_fields(scope: HostScope, host: Host) -> list[str]:
    """The fields VictoriaLogs indexes as the log stream: the same set Promtail makes
    Loki labels (cluster, host, host labels, unit, level, component)."""
    fields = ["cluster", "host", *(k for k, _ in host.labels)]
    if host.vars.logs.source == "journal":
        fields.append("unit")
    return [*fields, *promtail.LABEL_FIELDS]


def processors(scope: HostScope, host: Host) -> dict[str, Any]:
    o = host.vars.otelcol
    attributes = [
        {"key": "host.name", "value": host.name, "action": "upsert"},
        {"key": "flintlock.cluster", "value": scope.cluster, "action": "upsert"},
        *({"key": k, "value": v, "action": "upsert"} for k, v in host.labels),
    ]
    out: dict[str, Any] = {
        # limit_mib is the hard limit; the soft limit is limit - spike, where the
        # collector starts refusing data (build.py guarantees spike < limit).
        "memory_limiter": {
            "check_interval": "1s",
            "limit_mib": o.memory_limit_mib,
            "spike_limit_mib": o.memory_spike_limit_mib,
        },
        "resource": {"attributes": attributes},
    }
    if o.logs_pipeline:
        out["resource/logs"] = {"attributes": log_resource(scope, host)}
    if o.sampling_percentage is not None:
        out["probabilistic_sampler"] = {"sampling_percentage": o.sampling_percentage}
    if not queue_batching(o.version):
        out["batch"] = {"send_batch_size": 8192, "timeout": "5s"}
    return out


def _queue(version: tuple[int, int, int]) -> dict[str, Any]:
    if not queue_batching(version):
        return {"enabled": True, "queue_size": 5000}
    # From v0.160 the exporter batches out of its queue (the batch processor's job);
    # sizes count items (spans, log records), as send_batch_size did.
    return {
        "enabled": True,
        "sizer": "items",
        "queue_size": 100000,
        "batch": {"flush_timeout": "5s", "min_size": 8192, "max_size": 16384},
    }


def _tls(auth: FileAuth, *, insecure: bool) -> dict[str, Any]:
    tls: dict[str, Any] = {"insecure": insecure}
    if not insecure:
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(auth, key):
                tls[key] = getattr(auth, key)
        if auth.insecure_skip_verify:
            tls["insecure_skip_verify"] = True
    return tls


def _auth_extension(auth: FileAuth, name: str) -> tuple[str, dict[str, Any]] | None:
    """The client auth extension for one destination: the secret stays in its file.

    basicauth's ``password_file`` is read as it is; a ``${file:…}`` reference would be
    parsed as YAML (a password starting with `#` or `{`, or containing `: `, breaks).
    """
    if auth.bearer_token_file:
        return f"bearertokenauth/{name}", {"filename": auth.bearer_token_file}
    if auth.username and auth.password_file:
        return f"basicauth/{name}", {
            "client_auth": {"username": auth.username, "password_file": auth.password_file}
        }
    return None


def traces_exporter(scope: HostScope, host: Host) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The OTLP/gRPC exporter to the trace store: (id, body, auth extensions)."""
    t = scope.central.traces
    grpc, _ = exporter_types(host.vars.otelcol.version)
    exp: dict[str, Any] = {"endpoint": t.otlp_endpoint, "tls": _tls(t.auth, insecure=t.insecure)}
    if t.headers_from_env:
        exp["headers"] = {header: env_ref(var) for header, var in t.headers_from_env}
    extensions: dict[str, Any] = {}
    found = _auth_extension(t.auth, TRACES_EXPORTER)
    if found:
        extensions[found[0]] = found[1]
        exp["auth"] = {"authenticator": found[0]}
    exp["sending_queue"] = _queue(host.vars.otelcol.version)
    exp["retry_on_failure"] = {"enabled": True, "max_elapsed_time": "5m"}
    return f"{grpc}/{TRACES_EXPORTER}", exp, extensions


def logs_exporter(scope: HostScope, host: Host) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The OTLP/HTTP exporter to the log store (never the trace store: Tempo and Jaeger
    have no OTLP logs service)."""
    store = scope.central.logs
    _, http = exporter_types(host.vars.otelcol.version)
    exp: dict[str, Any] = {"logs_endpoint": store.otlp_logs_url}
    if store.otlp_logs_url.startswith("https://"):
        exp["tls"] = _tls(store.auth, insecure=False)
    headers = dict(store.tenant_headers())
    if store.backend == "victorialogs":
        headers["VL-Stream-Fields"] = ",".join(log_stream_fields(scope, host))
    if headers:
        exp["headers"] = headers
    extensions: dict[str, Any] = {}
    found = _auth_extension(store.auth, LOGS_EXPORTER)
    if found:
        extensions[found[0]] = found[1]
        exp["auth"] = {"authenticator": found[0]}
    exp["sending_queue"] = _queue(host.vars.otelcol.version)
    exp["retry_on_failure"] = {"enabled": True, "max_elapsed_time": "5m"}
    return f"{http}/{LOGS_EXPORTER}", exp, extensions


# Request metrics from spans (flintlockd has no handling-time histogram: the spans are
# the only source of latency). The connector's default namespace gives Prometheus
# names traces_span_metrics_calls_total and traces_span_metrics_duration_seconds_*.
SPANMETRICS_EXPORTER = "prometheus/spanmetrics"
# Contrib renamed components to snake case (`spanmetrics` → `span_metrics`, `filelog` →
# `file_log`); in v0.158 the old names are deprecated aliases that warn at every start
# (seen with the real collector; v0.140 has only the old names). 0.158 is the oldest
# release the new names were checked in.
UNDERSCORE_NAMES = (0, 158, 0)


def spanmetrics_type(version: tuple[int, int, int]) -> str:
    return "span_metrics" if version >= UNDERSCORE_NAMES else "spanmetrics"


def filelog_type(version: tuple[int, int, int]) -> str:
    """`file_log` in v0.158, where `filelog` is a deprecated alias that warns (seen with
    the real collector, like `span_metrics`)."""
    return "file_log" if version >= UNDERSCORE_NAMES else "filelog"


# Seconds: a CreateMicroVM runs a plan (seconds), reads take milliseconds.
LATENCY_BUCKETS = (
    "5ms",
    "10ms",
    "25ms",
    "50ms",
    "100ms",
    "250ms",
    "500ms",
    "1s",
    "2500ms",
    "5s",
    "10s",
    "30s",
    "60s",
)


def spanmetrics_connector() -> dict[str, Any]:
    return {
        "histogram": {"unit": "s", "explicit": {"buckets": list(LATENCY_BUCKETS)}},
        # The gRPC method and code of each call (OpenTelemetry's rpc.* conventions).
        "dimensions": [{"name": "rpc.method"}, {"name": "rpc.grpc.status_code"}],
        "metrics_flush_interval": "15s",
        # A method nobody called for 5 minutes drops out instead of going flat.
        "metrics_expiration": "5m",
    }


def config(scope: HostScope, host: Host) -> dict[str, Any]:
    o = host.vars.otelcol
    logs = host.vars.logs
    extensions: dict[str, Any] = {"health_check": {"endpoint": _endpoint(o.health_endpoint)}}
    trace_id, trace_exp, trace_ext = traces_exporter(scope, host)
    exporters: dict[str, Any] = {trace_id: trace_exp}
    extensions.update(trace_ext)
    procs = processors(scope, host)
    batch = ["batch"] if "batch" in procs else []
    sampler = ["probabilistic_sampler"] if "probabilistic_sampler" in procs else []
    spanmetrics = spanmetrics_type(o.version)
    pipelines: dict[str, Any] = {
        "traces": {
            "receivers": ["otlp"],
            "processors": ["memory_limiter", "resource", *sampler, *batch],
            # Without sampling the stored traces and the metrics see the same spans.
            "exporters": [trace_id, *([] if sampler else [spanmetrics])],
        },
    }
    if sampler:
        # Request metrics count every call, not the sampled share.
        pipelines["traces/spanmetrics"] = {
            "receivers": ["otlp"],
            "processors": ["memory_limiter", "resource"],
            "exporters": [spanmetrics],
        }
    exporters[SPANMETRICS_EXPORTER] = {"endpoint": _endpoint(o.spanmetrics_endpoint)}
    pipelines["metrics/spanmetrics"] = {
        "receivers": [spanmetrics],
        "processors": ["memory_limiter"],
        "exporters": [SPANMETRICS_EXPORTER],
    }
    if o.logs_pipeline:
        logs_id, logs_exp, logs_ext = logs_exporter(scope, host)
        exporters[logs_id] = logs_exp
        extensions.update(logs_ext)
        log_receiver = "journald" if logs.source == "journal" else filelog_type(o.version)
        pipelines["logs"] = {
            "receivers": ["otlp", log_receiver],
            # Sampling is for traces; every log line is kept.
            "processors": ["memory_limiter", "resource", "resource/logs", *batch],
            "exporters": [logs_id],
        }
    metrics = o.metrics_endpoint
    doc = {
        "extensions": extensions,
        "receivers": receivers(host),
        "processors": procs,
        "exporters": exporters,
        "connectors": {spanmetrics: spanmetrics_connector()},
        "service": {
            "extensions": list(extensions),
            "pipelines": pipelines,
            "telemetry": {
                "logs": {"level": "info"},
                "metrics": {
                    "level": "normal",
                    "readers": [
                        {
                            "pull": {
                                "exporter": {
                                    "prometheus": {"host": metrics.host, "port": metrics.port}
                                }
                            }
                        }
                    ],
                },
            },
        },
    }
    return dict(escape_dollars(doc))


def host_files(scope: HostScope, host: Host) -> dict[str, bytes]:
    if not host.vars.otelcol.enabled:
        return {}
    return {
        f"hosts/{host.name}/otelcol.yaml": yaml_file(
            scope,
            f"OpenTelemetry Collector (otelcol-contrib) for Flintlock host {host.name}: run with\n"
            "  otelcol-contrib --config=<this file>\n"
            "Header values come from the environment (${env:VAR}); a $$ is a literal $.",
            config(scope, host),
        ),
    }
