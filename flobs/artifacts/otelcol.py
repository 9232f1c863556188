"""OpenTelemetry Collector per host: OTLP in on loopback, OTLP out to the centre.

Facts relied on (flintlock-facts.md, grafana-api.md):
* flintlockd and the CAPMVM controller would send OTLP to a collector on the same
  host (``localhost:4317`` gRPC, ``localhost:4318`` HTTP).
* ``memory_limiter`` must run first (it refuses data before anything buffers it),
  samplers next, ``batch`` last (batching before sampling would batch dropped spans).
* The collector's internal metrics are served by a pull Prometheus reader
  (``service.telemetry.metrics.readers``), scraped by the host's local Prometheus.

Value expansion: the collector expands ``${VAR}``, ``${env:VAR}`` and ``${file:…}`` in
every string of its config, and ``$$`` stands for a literal ``$``. So every ``$``
in a value we write is doubled, except the references we mean (:class:`Expand`).
Secrets are never inline: headers are ``${env:VAR}`` references, tokens and
passwords are read from files by the collector.

The components used (``resource``, ``probabilistic_sampler``, ``journald``,
``filelog``, ``bearertokenauth``, ``basicauth``, ``file_storage``) ship in the
``otelcol-contrib`` distribution.
"""

from __future__ import annotations

from typing import Any

from flobs.artifacts import promtail
from flobs.artifacts.common import yaml_file
from flobs.model import Endpoint, Fleet, Host


class Expand(str):
    """A string the collector must expand (``${env:VAR}``): its ``$`` stays single."""

    __slots__ = ()


def escape_dollars(data: Any) -> Any:
    """Double every ``$`` in every string (keys too), except :class:`Expand` values."""
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


def file_ref(path: str) -> Expand:
    # A `}` would end the reference early and `$` start another: the inventory
    # builder refuses such paths with their position (flobs.inventory.build).
    if "}" in path or "$" in path:
        raise ValueError(f"file_ref: {path!r} cannot be a ${{file:...}} reference")
    return Expand(f"${{file:{path}}}")


# Keeps one flintlockd JSON line's fields as attributes and takes the timestamp
# and severity from them; a line that is not JSON is sent as it is (send_quiet).
# Go layout of logrus' time.RFC3339 (flintlock-facts.md).
GO_RFC3339 = "2006-01-02T15:04:05Z07:00"


def _json_operator(parse_from: str) -> dict[str, Any]:
    return {
        "type": "json_parser",
        "parse_from": parse_from,
        "parse_to": "attributes",
        "on_error": "send_quiet",
        "timestamp": {
            "parse_from": f"attributes.{promtail.TIME_FIELD}",
            "layout_type": "gotime",
            "layout": GO_RFC3339,
        },
        "severity": {"parse_from": "attributes.level"},
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
                "storage": "file_storage",
                # Journal entries arrive as a map; flintlockd's JSON is in MESSAGE.
                "operators": [_json_operator("body.MESSAGE")],
            }
        else:
            out["filelog"] = {
                "include": [logs.path],
                "start_at": "end",
                "storage": "file_storage",
                "operators": [_json_operator("body")],
            }
    return out


def processors(fleet: Fleet, host: Host) -> dict[str, Any]:
    o = host.vars.otelcol
    attributes = [
        {"key": "host.name", "value": host.name, "action": "upsert"},
        {"key": "flintlock.cluster", "value": fleet.cluster, "action": "upsert"},
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
    if o.sampling_percentage is not None:
        out["probabilistic_sampler"] = {"sampling_percentage": o.sampling_percentage}
    out["batch"] = {"send_batch_size": 8192, "timeout": "5s"}
    return out


def exporter(fleet: Fleet) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``otlp`` exporter and the auth extensions it needs."""
    t = fleet.central.traces
    tls: dict[str, Any] = {"insecure": t.insecure}
    if not t.insecure:
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(t.auth, key):
                tls[key] = getattr(t.auth, key)
        if t.auth.insecure_skip_verify:
            tls["insecure_skip_verify"] = True
    exp: dict[str, Any] = {"endpoint": t.otlp_endpoint, "tls": tls}
    if t.headers_from_env:
        exp["headers"] = {header: env_ref(var) for header, var in t.headers_from_env}
    extensions: dict[str, Any] = {}
    if t.auth.bearer_token_file:
        extensions["bearertokenauth/central"] = {"filename": t.auth.bearer_token_file}
        exp["auth"] = {"authenticator": "bearertokenauth/central"}
    elif t.auth.username and t.auth.password_file:
        extensions["basicauth/central"] = {
            "client_auth": {"username": t.auth.username, "password": file_ref(t.auth.password_file)}
        }
        exp["auth"] = {"authenticator": "basicauth/central"}
    exp["sending_queue"] = {"enabled": True, "queue_size": 5000}
    exp["retry_on_failure"] = {"enabled": True, "max_elapsed_time": "5m"}
    return {"otlp": exp}, extensions


def config(fleet: Fleet, host: Host) -> dict[str, Any]:
    o = host.vars.otelcol
    logs = host.vars.logs
    exporters, auth_extensions = exporter(fleet)
    extensions: dict[str, Any] = {"health_check": {"endpoint": _endpoint(o.health_endpoint)}}
    extensions.update(auth_extensions)
    if o.logs_pipeline:
        # Read offsets survive restarts (the collector's positions file).
        extensions["file_storage"] = {
            "directory": f"{logs.positions_dir.rstrip('/')}/otelcol",
            "create_directory": True,
        }
    procs = processors(fleet, host)
    trace_processors = list(procs)  # memory_limiter … batch, in the order built
    pipelines: dict[str, Any] = {
        "traces": {"receivers": ["otlp"], "processors": trace_processors, "exporters": ["otlp"]},
    }
    if o.logs_pipeline:
        log_receiver = "journald" if logs.source == "journal" else "filelog"
        pipelines["logs"] = {
            "receivers": ["otlp", log_receiver],
            # Sampling is for traces; every log line is kept.
            "processors": [p for p in trace_processors if p != "probabilistic_sampler"],
            "exporters": ["otlp"],
        }
    metrics = o.metrics_endpoint
    doc = {
        "extensions": extensions,
        "receivers": receivers(host),
        "processors": procs,
        "exporters": exporters,
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


def host_files(fleet: Fleet, host: Host) -> dict[str, bytes]:
    if not host.vars.otelcol.enabled:
        return {}
    return {
        f"hosts/{host.name}/otelcol.yaml": yaml_file(
            fleet,
            f"OpenTelemetry Collector (otelcol-contrib) for Flintlock host {host.name}: run with\n"
            "  otelcol-contrib --config=<this file>\n"
            "Header values come from the environment (${env:VAR}); a $$ is a literal $.",
            config(fleet, host),
        ),
    }
