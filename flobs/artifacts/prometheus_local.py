"""Each host's local Prometheus: scrape jobs, external labels, limits, local rules."""

from __future__ import annotations

from typing import Any

from flobs import versions
from flobs.artifacts.common import http_client_auth, scrape_address, yaml_file
from flobs.artifacts.extensions import extra_scrape_configs
from flobs.artifacts.series import federated_name_regex, local_rules
from flobs.model import FileAuth, Host, HostScope

# Limits that stop one broken exporter from flooding the TSDB; exceeding one fails
# the scrape (grafana-api.md), which `up == 0` and the agent alerts then surface.
LABEL_LIMITS = {
    "label_limit": 40,
    "label_name_length_limit": 128,
    "label_value_length_limit": 1024,
}

# Cloud Hypervisor names device counters `_<class><n>_<key>` (flintlock-facts.md);
# moving the device into a label is what makes a per-device dashboard possible.
CH_NAME = "_([a-z]+)([0-9]+)_(.+)"
# Firecracker series are `<group>_<key>`; prefixing them keeps them apart from
# any other exporter's names (`net_rx_bytes_count` is too generic to leave bare).
FC_NAME = "([a-z][a-zA-Z0-9_]*)"


def flintlock_metrics_relabel() -> list[dict[str, Any]]:
    return [
        {
            "source_labels": ["__name__"],
            "regex": FC_NAME,
            "target_label": "__name__",
            "replacement": "firecracker_${1}",
        },
        {
            "source_labels": ["__name__"],
            "regex": CH_NAME,
            "target_label": "device",
            "replacement": "${1}${2}",
        },
        {
            "source_labels": ["__name__"],
            "regex": CH_NAME,
            "target_label": "__name__",
            "replacement": "cloud_hypervisor_${1}_${3}",
        },
    ]


def _job(
    name: str,
    target: str,
    host: Host,
    *,
    path: str = "/metrics",
    sample_limit: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    job: dict[str, Any] = {"job_name": name}
    if path != "/metrics":
        job["metrics_path"] = path
    job["static_configs"] = [{"targets": [target], "labels": {"instance": host.name}}]
    if sample_limit:
        job["sample_limit"] = sample_limit
    job.update(LABEL_LIMITS)
    job.update(extra or {})
    return job


def scrape_jobs(host: Host) -> list[dict[str, Any]]:
    v = host.vars
    jobs: list[dict[str, Any]] = []
    if v.flintlockd.metrics_endpoint is not None:
        jobs.append(
            _job(
                "flintlockd",
                str(v.flintlockd.metrics_endpoint),
                host,
                sample_limit=v.flintlockd.sample_limit,
            )
        )
    if v.flintlock_metrics.enabled:
        jobs.append(
            _job(
                "flintlock-metrics",
                str(v.flintlock_metrics.endpoint),
                host,
                path=v.flintlock_metrics.path,
                sample_limit=v.flintlock_metrics.sample_limit,
                extra={
                    "body_size_limit": "64MB",
                    **_fallback_protocol(v.local_prometheus.version),
                    "metric_relabel_configs": flintlock_metrics_relabel(),
                },
            )
        )
    if v.node_exporter.enabled:
        extra: dict[str, Any] = {}
        if v.node_exporter.tls_cert_file:
            tls: dict[str, Any] = {"insecure_skip_verify": False}
            # A private CA must be named, or the scrape fails with "x509: certificate
            # signed by unknown authority" (issue 14).
            if v.node_exporter.tls_ca_file:
                tls["ca_file"] = v.node_exporter.tls_ca_file
            if v.node_exporter.tls_server_name:
                tls["server_name"] = v.node_exporter.tls_server_name
            extra = {"scheme": "https", "tls_config": tls}
        jobs.append(
            _job(
                "node",
                str(v.node_exporter.endpoint),
                host,
                sample_limit=v.node_exporter.sample_limit,
                extra=extra,
            )
        )
    if v.process_exporter.enabled:
        jobs.append(
            _job(
                "process",
                str(v.process_exporter.endpoint),
                host,
                sample_limit=v.process_exporter.sample_limit,
            )
        )
    if v.containerd_metrics_endpoint is not None:
        jobs.append(
            _job(
                "containerd",
                str(v.containerd_metrics_endpoint),
                host,
                path="/v1/metrics",
                sample_limit=20000,
            )
        )
    # An agent allowed to listen on 0.0.0.0 is still scraped over loopback.
    if host.log_agent is not None:
        jobs.append(_job(host.log_agent, scrape_address(v.logs.listen), host, sample_limit=5000))
    if v.otelcol.enabled:
        jobs.append(
            _job("otelcol", scrape_address(v.otelcol.metrics_endpoint), host, sample_limit=5000)
        )
        # flintlockd's request metrics, derived from its spans by the collector.
        jobs.append(
            _job(
                "flintlockd-spans",
                scrape_address(v.otelcol.spanmetrics_endpoint),
                host,
                sample_limit=5000,
            )
        )
    jobs.append(
        _job(
            "prometheus",
            scrape_address(v.local_prometheus.listen),
            host,
            sample_limit=20000,
            extra=_self_scrape(host),
        )
    )
    return jobs


def _fallback_protocol(version: str) -> dict[str, Any]:
    """flintlock-metrics sets no Content-Type: Go's net/http sniffs text/plain for text,
    but application/octet-stream when a control byte (a microVM name) comes first, and
    Prometheus 3 fails a scrape of a type it does not support unless told what to assume
    (tests/e2e/test_prometheus3_scrape.py)."""
    if versions.has_fallback_scrape_protocol(version):
        return {"fallback_scrape_protocol": "PrometheusText0.0.4"}
    return {}


def retention(version: str, time: str) -> dict[str, Any]:
    """``storage.tsdb.retention`` for versions that read it from the file (3.8+);
    older ones get ``--storage.tsdb.retention.time`` in their run artifacts."""
    if versions.retention_in_config(version):
        return {"storage": {"tsdb": {"retention": {"time": time}}}}
    return {}


def _self_scrape(host: Host) -> dict[str, Any]:
    """The local Prometheus scrapes itself through its own web config."""
    web = host.vars.local_prometheus.web
    if web is None:
        return {}
    extra: dict[str, Any] = {}
    if web.tls:
        # Over loopback, to a certificate issued for the host's address: the name cannot
        # match, and no other machine is on this path, so only here is it not verified.
        extra["scheme"] = "https"
        extra["tls_config"] = {"insecure_skip_verify": True}
    if web.self_username:
        extra["basic_auth"] = {
            "username": web.self_username,
            "password_file": web.self_password_file,
        }
    return extra


def web_config(host: Host) -> dict[str, Any] | None:
    """``--web.config.file`` for the local Prometheus (exporter-toolkit format)."""
    web = host.vars.local_prometheus.web
    if web is None:
        return None
    doc: dict[str, Any] = {}
    if web.tls:
        tls: dict[str, Any] = {
            "cert_file": web.tls_cert_file,
            "key_file": web.tls_key_file,
            "min_version": "TLS12",
        }
        if web.client_ca_file:
            tls["client_ca_file"] = web.client_ca_file
            tls["client_auth_type"] = "RequireAndVerifyClientCert"
        doc["tls_server_config"] = tls
    if web.basic_auth_users:
        doc["basic_auth_users"] = dict(web.basic_auth_users)
    return doc


def _auth(auth: FileAuth) -> dict[str, Any]:
    return http_client_auth(auth, bearer="authorization")


def external_labels(scope: HostScope, host: Host) -> dict[str, str]:
    """As written in the file: Prometheus 3 ``$``-expands them, so ``$`` is doubled there."""
    version = host.vars.local_prometheus.version
    labels = {"cluster": scope.cluster, "host": host.name, **dict(host.labels)}
    return {name: versions.escape_external_label(version, value) for name, value in labels.items()}


def config(scope: HostScope, host: Host) -> dict[str, Any]:
    v = host.vars
    doc: dict[str, Any] = {
        "global": {
            "scrape_interval": v.scrape_interval,
            "scrape_timeout": v.scrape_timeout,
            "evaluation_interval": v.evaluation_interval,
            # Attached by /federate and remote_write to every series lacking them.
            "external_labels": external_labels(scope, host),
        },
        "rule_files": ["rules/*.yml"],
        # The inventory's own jobs (vars.extra_scrape_jobs) come after flobs' jobs.
        "scrape_configs": [*scrape_jobs(host), *extra_scrape_configs(host)],
        **retention(v.local_prometheus.version, v.local_prometheus.retention),
    }
    central = scope.central.prometheus
    if central.mode == "remote_write" and central.remote_write is not None:
        rw = central.remote_write
        doc["remote_write"] = [
            {
                "url": rw.url,
                "name": "flobs-central",
                **_auth(rw.auth),
                # Same contract as federation: only pre-aggregated series leave the host.
                "write_relabel_configs": [
                    {
                        "source_labels": ["__name__"],
                        "regex": federated_name_regex(scope),
                        "action": "keep",
                    }
                ],
                "queue_config": {
                    "max_samples_per_send": rw.max_samples_per_send,
                    "capacity": rw.capacity,
                    "max_shards": rw.max_shards,
                },
            }
        ]
    # keep_dropped_targets arrived in Prometheus 2.47.0 (CHANGELOG); 2.43-2.46 reject it.
    if versions.at_least(v.local_prometheus.version, "2.47"):
        # Shown in /targets when the limits drop something; unknown to 2.42.
        for job in doc["scrape_configs"]:
            job["keep_dropped_targets"] = 100
    return doc


def rules(scope: HostScope, host: Host) -> dict[str, Any]:
    groups: dict[str, list[dict[str, str]]] = {}
    remote_write = scope.central.prometheus.mode == "remote_write"
    for rule in local_rules(host, remote_write=remote_write):
        groups.setdefault(rule.group, []).append({"record": rule.record, "expr": rule.expr})
    return {
        "groups": [
            {"name": name, "interval": host.vars.evaluation_interval, "rules": items}
            for name, items in groups.items()
        ]
    }


def host_files(scope: HostScope, host: Host) -> dict[str, bytes]:
    base = f"hosts/{host.name}"
    for_version = versions.header_line(host.vars.local_prometheus.version)
    files = {
        f"{base}/prometheus.yml": yaml_file(
            scope,
            f"Local Prometheus for Flintlock host {host.name}.\n{for_version}",
            config(scope, host),
        ),
        f"{base}/rules/flobs-local.yml": yaml_file(
            scope,
            f"Recording rules for {host.name}: pre-aggregate what the centre needs.\n"
            + for_version,
            rules(scope, host),
        ),
    }
    web = web_config(host)
    if web is not None:
        files[f"{base}/prometheus-web.yml"] = yaml_file(
            scope,
            f"Web config (--web.config.file) of the local Prometheus on {host.name}:\n"
            "TLS and the users the centre federates with (bcrypt hashes).",
            web,
        )
    return files
