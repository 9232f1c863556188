"""Promtail per host: ship flintlockd's logrus lines to the central Loki.

The field mapping below is the one source of truth for both log agents: the Alloy
config (``alloy.py``), the label-cardinality check and the fixture-corpus test
all read it.

Facts relied on (flintlock-facts.md, grafana-api.md):
* flintlockd logs through logrus; with ``--log-format json`` a line is
  ``{"level":…,"msg":…,"time":"<RFC3339>", …fields}``; under systemd it lands in
  the journal of ``flintlockd.service``.
* ``vmid`` (``namespace/name/uid``) is unbounded: it must never become a Loki label.
  ``level`` and ``component`` are safe labels.
* Promtail drops ``__``-labels unless relabelled; the file target adds ``filename``.
* Promtail only expands ``${VAR}`` with ``-config.expand-env``, which we never use,
  so inventory values are written as they are (escaped by ``yamlio``).
"""

from __future__ import annotations

from typing import Any

from flobs.artifacts.common import http_client_auth, yaml_file
from flobs.model import FileAuth, Host, HostScope

# logrus JSON field → extracted name. Fields missing from a line are simply absent.
JSON_FIELDS: tuple[str, ...] = (
    "level",
    "msg",
    "time",
    "component",
    "action",
    "vmid",
    "trace_id",
    "span_id",
)
# Bounded fields that become stream labels: logrus has seven levels, flintlockd a
# handful of components (`app`, `plans`, …).
LABEL_FIELDS: tuple[str, ...] = ("level", "component")
# Unbounded fields kept as structured metadata: queryable, never indexed.
METADATA_FIELDS: tuple[str, ...] = ("vmid", "trace_id", "span_id")
# The timestamp field and its format: logrus writes time.RFC3339 (Go's parser also
# accepts fractional seconds under that layout).
TIME_FIELD = "time"
TIME_FORMAT = "RFC3339"
# Labels an agent adds on its own that we do not want in the index: Promtail's and
# Alloy's file targets add `filename`; Alloy's sources add `job`.
DROPPED_LABELS: tuple[str, ...] = ("filename", "job")
# The journal field that names the unit; relabelled to the `unit` label.
JOURNAL_UNIT_LABEL = "__journal__systemd_unit"
# How far back the first start reads the journal (later starts resume at the positions).
JOURNAL_MAX_AGE = "12h"
POSITIONS_FILE = "positions.yaml"


# Labels the pipeline sets from each entry. A host label of the same name would be
# overridden on JSON lines only (entry labels win over client external labels), so
# one label would mean two things; the inventory loader refuses such host labels.
PIPELINE_LABELS: tuple[str, ...] = (*LABEL_FIELDS, "unit", "service_name")


# Loki 3 derives `service_name` from the first of a list of labels (else from the
# first stream label, e.g. `component`), so every stream of flintlockd says who it is.
SERVICE_NAME = "flintlockd"


def stream_labels(scope: HostScope, host: Host) -> dict[str, str]:
    """The constant labels every stream of this host carries."""
    return {
        "cluster": scope.cluster,
        "host": host.name,
        "service_name": SERVICE_NAME,
        **host.label_dict,
    }


def client(scope: HostScope, host: Host) -> dict[str, Any]:
    loki = scope.central.logs
    doc: dict[str, Any] = {"url": loki.url}
    if loki.tenant:
        doc["tenant_id"] = loki.tenant
    doc.update(_auth(loki.auth))
    # A short batch wait keeps logs near real time; backoff rides out a Loki restart
    # (up to ~5 min of retries) before dropping a batch.
    doc["batchwait"] = "1s"
    doc["batchsize"] = 1048576
    doc["timeout"] = "10s"
    doc["backoff_config"] = {"min_period": "500ms", "max_period": "5m", "max_retries": 10}
    doc["external_labels"] = stream_labels(scope, host)
    return doc


def _auth(auth: FileAuth) -> dict[str, Any]:
    return http_client_auth(auth, bearer="bearer_token_file")


def metadata_fields(scope: HostScope) -> tuple[str, ...]:
    """Fields sent as Loki structured metadata. VictoriaLogs parses the JSON line into
    fields itself (none of them a stream field), so metadata would only repeat them."""
    return () if scope.central.logs.backend == "victorialogs" else METADATA_FIELDS


def pipeline_stages(scope: HostScope, host: Host) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = [
        # Lines that are not JSON (panics, Go runtime output) pass through unchanged.
        {"json": {"expressions": {f: f for f in JSON_FIELDS}, "drop_malformed": False}},
        # Without a parsable `time` the entry keeps the time it was read
        # (action_on_failure skip). `fudge` would stamp a panic's lines with the last
        # JSON line's time + 1 ns instead, however much later they came.
        {"timestamp": {"source": TIME_FIELD, "format": TIME_FORMAT, "action_on_failure": "skip"}},
        {"labels": {f: None for f in LABEL_FIELDS}},
    ]
    if metadata_fields(scope):
        stages.append({"structured_metadata": {f: None for f in metadata_fields(scope)}})
    if host.vars.logs.source == "file":
        stages.append({"labeldrop": ["filename"]})
    return stages


def scrape_config(scope: HostScope, host: Host) -> dict[str, Any]:
    logs = host.vars.logs
    job: dict[str, Any] = {"job_name": "flintlockd"}
    if logs.source == "journal":
        job["journal"] = {
            "json": False,  # the line is MESSAGE: flintlockd's own JSON
            "max_age": JOURNAL_MAX_AGE,
            "matches": f"_SYSTEMD_UNIT={logs.unit}",
        }
        job["relabel_configs"] = [
            {"source_labels": [JOURNAL_UNIT_LABEL], "target_label": "unit"},
        ]
    else:
        job["static_configs"] = [{"targets": ["localhost"], "labels": {"__path__": logs.path}}]
    job["pipeline_stages"] = pipeline_stages(scope, host)
    return job


def config(scope: HostScope, host: Host) -> dict[str, Any]:
    logs = host.vars.logs
    return {
        "server": {
            "http_listen_address": logs.listen.host,
            "http_listen_port": logs.listen.port,
            # Promtail's gRPC server is unused; port 0 picks a free one, bound to the
            # same address so nothing listens publicly by accident.
            "grpc_listen_address": logs.listen.host,
            "grpc_listen_port": 0,
            "log_level": "info",
        },
        "positions": {
            "filename": f"{logs.positions_dir.rstrip('/')}/{POSITIONS_FILE}",
            "sync_period": "10s",
        },
        "clients": [client(scope, host)],
        "scrape_configs": [scrape_config(scope, host)],
    }


def host_files(scope: HostScope, host: Host) -> dict[str, bytes]:
    if host.log_agent != "promtail":
        return {}
    return {
        f"hosts/{host.name}/promtail.yml": yaml_file(
            scope,
            f"Promtail for Flintlock host {host.name}: run with\n"
            "  promtail -config.file=<this file>   (never -config.expand-env)\n"
            "Promtail is end-of-life since 2026-03-02; set vars.logs.agent: alloy to switch.",
            config(scope, host),
        ),
    }
