"""The central log and trace stores the demo and the tests run: VictoriaLogs and Jaeger v2.

Small query clients for both (``VictoriaLogsAPI``, ``JaegerAPI``; bounded, and failing
with RemoteError, as every :class:`~flobs.live.store_api.StoreAPI`), and the command
lines/configs to start them on loopback (real-components.md):

* VictoriaLogs: ``-httpListenAddr``/``-storageDataPath``; Loki push API at
  ``/insert/loki/api/v1/push``, OTLP logs at ``/insert/opentelemetry/v1/logs``,
  LogsQL at ``/select/logsql/query`` (one JSON object per line), and
  ``/internal/force_flush`` makes fresh rows searchable at once.
* Jaeger v2 always gets our own config: its built-in all-in-one config binds the
  query ports on every interface and claims a dozen ports plus 8888. Ours: memory
  storage, OTLP and the query API on loopback, internal metrics off. Query API:
  ``/api/services``, ``/api/traces?service=…&tags=…``, ``/api/traces/{id}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flobs import yamlio
from flobs.errors import RemoteError
from flobs.live.store_api import StoreAPI
from flobs.model import Endpoint

# --------------------------------------------------------------------------- VictoriaLogs


class VictoriaLogsAPI(StoreAPI):
    """LogsQL over HTTP. ``url`` is the server's root, e.g. http://127.0.0.1:9428."""

    kind = "VictoriaLogs"

    def force_flush(self) -> None:
        """Make rows ingested so far searchable now (VictoriaLogs buffers them ~1 s)."""
        self.get_text("/internal/force_flush")

    def query(self, logsql: str, *, limit: int = 1000, start: str = "") -> list[dict[str, str]]:
        """Matching log entries, newest first; every field is a string."""
        params = {"query": logsql, "limit": str(limit)}
        if start:
            params["start"] = start
        return self.get_lines("/select/logsql/query", params)

    def count(self, logsql: str) -> int:
        rows = self.query(f"{logsql} | stats count() as n")
        return int(rows[0]["n"]) if rows else 0

    def stream_field_names(self, logsql: str = "*") -> set[str]:
        """Names of the fields that make up the log streams matching ``logsql``."""
        path = "/select/logsql/stream_field_names"
        _, body = self.get(path, {"query": logsql})
        values = body.get("values") if isinstance(body, dict) else None
        if not isinstance(values, list):
            raise RemoteError(f"{self.where(path)}: the answer has no list of values")
        return {str(v["value"]) for v in values if isinstance(v, dict) and "value" in v}


def victorialogs_argv(
    binary: str, listen: Endpoint, data: Path, *, retention: str = "1d"
) -> list[str]:
    """VictoriaLogs drops entries older than its retention on ingestion."""
    return [
        binary,
        f"-httpListenAddr={listen}",
        f"-storageDataPath={data}",
        f"-retentionPeriod={retention}",
        "-loggerLevel=WARN",
    ]


# --------------------------------------------------------------------------- Jaeger


@dataclass(frozen=True)
class JaegerPorts:
    otlp_grpc: Endpoint
    otlp_http: Endpoint
    query_http: Endpoint
    query_grpc: Endpoint


def jaeger_config(ports: JaegerPorts) -> dict[str, Any]:
    """Jaeger v2 (an OpenTelemetry Collector distribution) with memory storage, every
    listener on the given loopback ports and no internal-metrics server (the
    collector default, :8888, would collide with the hosts' collectors)."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": [],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 100000}}}},
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "http": {"endpoint": str(ports.query_http)},
                "grpc": {"endpoint": str(ports.query_grpc)},
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": str(ports.otlp_grpc)},
                    "http": {"endpoint": str(ports.otlp_http)},
                }
            }
        },
        # Jaeger 1.76 embeds collector v0.140: only the old component names exist there.
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }


def write_jaeger_config(ports: JaegerPorts, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yamlio.dump(jaeger_config(ports), header="Jaeger v2 for the flobs demo/tests"),
        encoding="utf-8",
    )
    return path


def jaeger_argv(binary: str, config: Path) -> list[str]:
    return [binary, f"--config={config}"]


@dataclass(frozen=True)
class JaegerSpan:
    trace_id: str
    span_id: str
    operation: str
    service: str
    tags: dict[str, Any]  # span attributes
    process_tags: dict[str, Any]  # resource attributes (host.name, flintlock.cluster, …)
    error: bool


class JaegerAPI(StoreAPI):
    """Jaeger's query HTTP API (the one its UI and Grafana's datasource use)."""

    kind = "Jaeger"

    def _data(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The answer's ``data``; None when Jaeger does not know the path (404)."""
        _, body = self.get(path, params, not_found_ok=True)
        return body.get("data") if isinstance(body, dict) else None

    def services(self) -> list[str]:
        return sorted(self._data("/api/services") or [])

    def find_traces(
        self,
        service: str,
        *,
        tags: dict[str, str] | None = None,
        limit: int = 20,
        lookback: str = "1h",
    ) -> list[list[JaegerSpan]]:
        params = {"service": service, "limit": str(limit), "lookback": lookback}
        if tags:
            params["tags"] = json.dumps(tags)
        return [_spans(t) for t in self._data("/api/traces", params) or []]

    def trace(self, trace_id: str) -> list[JaegerSpan]:
        """The spans of one trace; empty when Jaeger does not know it."""
        data = self._data(f"/api/traces/{trace_id}")
        return _spans(data[0]) if data else []


def _tags(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in items}


def _spans(trace: dict[str, Any]) -> list[JaegerSpan]:
    processes = trace.get("processes") or {}
    out = []
    for s in trace.get("spans") or []:
        process = processes.get(s.get("processID"), {})
        tags = _tags(s.get("tags") or [])
        out.append(
            JaegerSpan(
                s["traceID"],
                s["spanID"],
                s["operationName"],
                process.get("serviceName", ""),
                tags,
                _tags(process.get("tags") or []),
                bool(tags.get("error")) or tags.get("otel.status_code") == "ERROR",
            )
        )
    return out
