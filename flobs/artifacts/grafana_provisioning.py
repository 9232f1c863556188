"""Grafana file provisioning: datasources with their correlations, and the dashboard provider.

* ``grafana/provisioning/datasources/flobs.yaml``: the central Prometheus, the log
  store (Loki, or VictoriaLogs through the ``victoriametrics-logs-datasource``
  plugin) and the trace store (Tempo, or Jaeger, a core datasource) with the
  inventory's uids, linked both ways: traces → logs (``tracesToLogsV2``) and →
  Prometheus (``tracesToMetrics``), a log line's ``trace_id`` → its trace
  (``derivedFields``), Prometheus exemplars → the trace store.
* ``grafana/provisioning/dashboards/flobs.yaml``: a file provider reading the
  dashboards from ``central.grafana.dashboards_path`` into the inventory's folder.

Grafana interpolates ``$VAR``/``${VAR}`` in these files from its environment
(grafana-api.md), so every literal ``$`` is written ``$$``. The only ``${…}`` left
single are secret references ``${FLOBS_…}`` in ``secureJsonData``: the value comes
from Grafana's environment (or ``flobs push-dashboards --datasources``); flobs
never reads or writes a secret.
"""

from __future__ import annotations

from typing import Any

from flobs.artifacts.common import yaml_file
from flobs.model import LOGS_DATASOURCE_TYPES, TRACES_DATASOURCE_TYPES, FileAuth, Fleet

DATASOURCES_FILE = "grafana/provisioning/datasources/flobs.yaml"
DASHBOARDS_FILE = "grafana/provisioning/dashboards/flobs.yaml"

# Environment variables that hold secrets Grafana needs, by datasource and kind.
SECRET_ENV = {
    ("loki", "token"): "FLOBS_LOKI_TOKEN",
    ("loki", "password"): "FLOBS_LOKI_PASSWORD",
    ("loki", "ca"): "FLOBS_LOKI_CA_CERT",
    ("loki", "cert"): "FLOBS_LOKI_CLIENT_CERT",
    ("loki", "key"): "FLOBS_LOKI_CLIENT_KEY",
}


def escape(text: str) -> str:
    """A literal for Grafana's provisioning files: ``$`` would start a variable."""
    return text.replace("$", "$$")


def _secret(datasource: str, kind: str) -> str:
    return "${" + SECRET_ENV[(datasource, kind)] + "}"


def _auth(datasource: str, auth: FileAuth) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(plain fields, jsonData, secureJsonData header values) for a datasource's auth.

    Grafana cannot read the agents' credential files, so the files' contents are
    referenced through environment variables; the header name list is returned
    separately because it shares ``httpHeaderName<N>`` numbering with the tenant.
    """
    plain: dict[str, Any] = {}
    json_data: dict[str, Any] = {}
    headers: list[str] = []
    if auth.username:
        plain["basicAuth"] = True
        plain["basicAuthUser"] = escape(auth.username)
    if auth.bearer_token_file:
        headers.append("Authorization")
    if auth.ca_file:
        json_data["tlsAuthWithCACert"] = True
    if auth.cert_file and auth.key_file:
        json_data["tlsAuth"] = True
    if auth.insecure_skip_verify:
        # Only when the inventory turned verification off for this endpoint.
        json_data["tlsSkipVerify"] = True
    return plain, json_data, headers


def _secure(datasource: str, auth: FileAuth, header_values: list[str]) -> dict[str, str]:
    secure: dict[str, str] = {}
    for n, value in enumerate(header_values, 1):
        secure[f"httpHeaderValue{n}"] = value
    if auth.username:
        secure["basicAuthPassword"] = _secret(datasource, "password")
    if auth.ca_file:
        secure["tlsCACert"] = _secret(datasource, "ca")
    if auth.cert_file and auth.key_file:
        secure["tlsClientCert"] = _secret(datasource, "cert")
        secure["tlsClientKey"] = _secret(datasource, "key")
    return secure


def prometheus(fleet: Fleet) -> dict[str, Any]:
    g = fleet.central.grafana
    return {
        "name": escape(g.prometheus.name),
        "type": "prometheus",
        "uid": g.prometheus.uid,
        "access": "proxy",
        "url": escape(g.prometheus.url),
        "isDefault": True,
        "editable": False,
        "jsonData": {
            "httpMethod": "POST",
            # Never step below the central scrape interval: finer steps only repeat samples.
            "timeInterval": fleet.central.prometheus.scrape_interval,
            "prometheusType": "Prometheus",
            "exemplarTraceIdDestinations": [
                {"datasourceUid": g.traces.uid, "name": "trace_id"},
            ],
        },
    }


def _trace_links(fleet: Fleet) -> list[dict[str, Any]]:
    """Derived fields: a log line's trace_id opens the trace in the trace store."""
    uid = fleet.central.grafana.traces.uid

    def link(name: str, matcher: str, regex: str) -> dict[str, Any]:
        return {
            "name": name,
            "matcherType": matcher,
            "matcherRegex": regex,
            "datasourceUid": uid,
            "url": "$${__value.raw}",
            "urlDisplayLabel": "View trace",
        }

    # VictoriaLogs keeps trace_id as a field of the entry (never a stream field); Loki
    # as structured metadata on every shipped line (never a label).
    links = [link("trace_id", "label", "trace_id")]
    if fleet.central.logs.backend != "victorialogs":
        # Lines shipped before the shipper kept trace_id as metadata: in the JSON body.
        links.append(link("trace_id_in_line", "regex", '"trace_id":"(\\w+)"'))
    return links


def logs(fleet: Fleet) -> dict[str, Any]:
    """The logs datasource: Loki, or VictoriaLogs through its Grafana plugin."""
    g = fleet.central.grafana
    lk = fleet.central.logs
    plain, json_data, auth_headers = _auth("loki", lk.auth)
    names: list[str] = []
    values: list[str] = []
    # The tenant is not a secret, but Grafana only takes custom header values in
    # secureJsonData (Loki: X-Scope-OrgID; VictoriaLogs: AccountID/ProjectID).
    for name, value in lk.tenant_headers().items():
        names.append(name)
        values.append(escape(value))
    if "Authorization" in auth_headers:
        names.append("Authorization")
        values.append("Bearer " + _secret("loki", "token"))
    for n, name in enumerate(names, 1):
        json_data[f"httpHeaderName{n}"] = name
    json_data["maxLines"] = 1000
    json_data["derivedFields"] = _trace_links(fleet)
    doc: dict[str, Any] = {
        "name": escape(g.logs.name),
        "type": LOGS_DATASOURCE_TYPES[lk.backend],
        "uid": g.logs.uid,
        "access": "proxy",
        "url": escape(g.logs.url),
        "editable": False,
        **plain,
        "jsonData": json_data,
    }
    secure = _secure("loki", lk.auth, values)
    if secure:
        doc["secureJsonData"] = secure
    return doc


def traces(fleet: Fleet) -> dict[str, Any]:
    """The traces datasource: Tempo, or Jaeger (a core Grafana datasource)."""
    g = fleet.central.grafana
    backend = fleet.central.traces.backend
    # Span resource attributes set by each host's collector → log stream labels.
    tags = [{"key": "host.name", "value": "host"}, {"key": "flintlock.cluster", "value": "cluster"}]
    to_logs: dict[str, Any] = {
        "datasourceUid": g.logs.uid,
        "spanStartTimeShift": "-5m",
        "spanEndTimeShift": "5m",
        "tags": tags,
        "filterByTraceID": True,
        "filterBySpanID": False,
        "customQuery": False,
    }
    if fleet.central.logs.backend == "victorialogs":
        # Grafana builds LogQL for Loki only; other log stores take a custom query.
        to_logs["customQuery"] = True
        to_logs["query"] = 'trace_id:="$${__span.traceId}"'
    json_data: dict[str, Any] = {
        "tracesToLogsV2": to_logs,
        "tracesToMetrics": {
            "datasourceUid": g.prometheus.uid,
            "spanStartTimeShift": "-5m",
            "spanEndTimeShift": "5m",
            "tags": [{"key": "host.name", "value": "host"}],
            "queries": [
                {
                    "name": "flintlockd gRPC calls",
                    # $$__tags: Grafana fills in host="…" from the span (escaped `$`).
                    "query": "sum by (grpc_method, grpc_code) "
                    "(host:grpc_server_handled:rate5m{$$__tags})",
                }
            ],
        },
        "nodeGraph": {"enabled": True},
    }
    if backend == "tempo":
        # No serviceMap: Tempo's service graph needs its metrics-generator writing
        # traces_service_graph_* series, which no flobs Prometheus ever has.
        if fleet.central.logs.backend == "loki":
            json_data["lokiSearch"] = {"datasourceUid": g.logs.uid}
        json_data["search"] = {"hide": False}
    return {
        "name": escape(g.traces.name),
        "type": TRACES_DATASOURCE_TYPES[backend],
        "uid": g.traces.uid,
        "access": "proxy",
        "url": escape(g.traces.url),
        "editable": False,
        "jsonData": json_data,
    }


def datasources(fleet: Fleet) -> dict[str, Any]:
    return {"apiVersion": 1, "datasources": [prometheus(fleet), logs(fleet), traces(fleet)]}


def dashboard_provider(fleet: Fleet) -> dict[str, Any]:
    g = fleet.central.grafana
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "flobs",
                "orgId": 1,
                "folder": escape(g.folder),
                "folderUid": g.folder_uid,
                "type": "file",
                # The files are the source of truth: regenerate, do not edit in the UI.
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": escape(g.dashboards_path), "foldersFromFilesStructure": False},
            }
        ],
    }


def fleet_files(fleet: Fleet) -> dict[str, bytes]:
    return {
        DATASOURCES_FILE: yaml_file(
            fleet,
            "Grafana datasources (file provisioning): copy to /etc/grafana/provisioning/"
            "datasources/.\nLiteral dollar signs are doubled; secrets are references to "
            "FLOBS_* variables of Grafana's environment.",
            datasources(fleet),
        ),
        DASHBOARDS_FILE: yaml_file(
            fleet,
            "Grafana dashboard provider (file provisioning): copy to /etc/grafana/provisioning/"
            "dashboards/\nand the files of grafana/dashboards/ to the provider's options.path.",
            dashboard_provider(fleet),
        ),
    }
