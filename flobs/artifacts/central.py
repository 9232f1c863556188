"""The central Prometheus: federation of every host, file_sd targets, central rules."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flobs import versions
from flobs.artifacts.common import http_client_auth, json_file, scrape_address, yaml_file
from flobs.artifacts.prometheus_local import retention
from flobs.artifacts.series import federation_match
from flobs.model import FileAuth, Fleet, Host

VERIFY_JOB = "flobs-verify"


def target_file_name(host: Host) -> str:
    """Targets are sharded by the host's first group, so one host's change touches one file."""
    group = host.groups[0] if host.groups else "ungrouped"
    return "targets/" + re.sub(r"[^A-Za-z0-9_.-]", "_", group) + ".json"


def targets(fleet: Fleet) -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {}
    for host in sorted(fleet.hosts, key=lambda h: h.name):
        files.setdefault(target_file_name(host), []).append(
            {
                "targets": [host.federation_target],
                "labels": {"cluster": fleet.cluster, "host": host.name, **dict(host.labels)},
            }
        )
    return dict(sorted(files.items()))


def federate_transport(fleet: Fleet) -> dict[str, Any]:
    """scheme, tls_config and basic_auth matching the hosts' web configs.

    The inventory loader has made sure every host serves the same scheme and lets
    the federation user in, so one job fits all of them.
    """
    auth = fleet.central.prometheus.federation_auth
    tls = any(
        h.vars.local_prometheus.web is not None and h.vars.local_prometheus.web.tls
        for h in fleet.hosts
    )
    if not tls:
        # TLS settings would be ignored over http; only the credential goes along.
        auth = FileAuth(username=auth.username, password_file=auth.password_file)
    out: dict[str, Any] = {"scheme": "https"} if tls else {}
    out.update(http_client_auth(auth))
    return out


def alerting(fleet: Fleet) -> dict[str, Any]:
    """The ``alerting:`` block: one entry per scheme and path prefix of the Alertmanagers."""
    am = fleet.central.alertmanager
    assert am is not None
    groups: dict[tuple[str, str], list[str]] = {}
    for url in am.urls:
        parts = urlsplit(url)
        groups.setdefault((parts.scheme, parts.path.rstrip("/")), []).append(parts.netloc)
    entries: list[dict[str, Any]] = []
    for (scheme, prefix), targets in groups.items():
        entry: dict[str, Any] = {"scheme": scheme}
        if prefix:
            entry["path_prefix"] = prefix
        entry["api_version"] = "v2"
        entry["timeout"] = "10s"
        # Credentials and TLS only where they are needed: leaving the host.
        entry.update(http_client_auth(am.auth, bearer="authorization"))
        entry["static_configs"] = [{"targets": targets}]
        entries.append(entry)
    return {"alertmanagers": entries}


def config(fleet: Fleet) -> dict[str, Any]:
    p = fleet.central.prometheus
    jobs: list[dict[str, Any]] = []
    if p.mode == "federation":
        jobs.append(
            {
                "job_name": "federate",
                "honor_labels": True,  # keep each host's job/instance/host labels
                "metrics_path": "/federate",
                # Only aggregated series: federating everything does not scale (Prometheus docs).
                "params": {"match[]": federation_match(fleet)},
                "file_sd_configs": [{"files": ["targets/*.json"], "refresh_interval": "1m"}],
                "sample_limit": 200000,
                **federate_transport(fleet),
            }
        )
    jobs.append(
        {
            "job_name": "prometheus",
            "static_configs": [{"targets": [scrape_address(p.listen)]}],
        }
    )
    if fleet.central.verify.enabled:
        # `flobs verify --every … --listen`: the centre watches its own verifier.
        jobs.append(
            {
                "job_name": VERIFY_JOB,
                "static_configs": [{"targets": [fleet.central.verify.listen]}],
            }
        )
    doc: dict[str, Any] = {
        "global": {
            "scrape_interval": p.scrape_interval,
            "scrape_timeout": p.scrape_timeout,
            "evaluation_interval": p.evaluation_interval,
            "external_labels": {
                "cluster": versions.escape_external_label(p.version, fleet.cluster)
            },
        },
        **retention(p.version, p.retention),
    }
    if p.mode == "federation":
        # In remote_write mode the series live in the store, not here: rules evaluated
        # on this empty TSDB would page for every host (e.g. "fewer hosts than the
        # inventory"). There vmalert evaluates rules/*.yml (central/vmalert.args).
        doc["rule_files"] = ["rules/*.yml"]
        if fleet.central.alertmanager is not None:
            doc["alerting"] = alerting(fleet)
    doc["scrape_configs"] = jobs
    return doc


def fleet_files(fleet: Fleet) -> dict[str, bytes]:
    files = {
        "central/prometheus.yml": yaml_file(
            fleet,
            (
                "Central Prometheus: federates pre-aggregated series from every host."
                if fleet.central.prometheus.mode == "federation"
                else "Central Prometheus (remote_write mode: hosts push to the store; "
                "no federation).\nEvaluate rules/*.yml where the data is: the store's ruler "
                "(vmalert, Mimir ruler)."
            )
            + "\n"
            + versions.header_line(fleet.central.prometheus.version),
            config(fleet),
        ),
    }
    for name, entries in targets(fleet).items():
        files[f"central/{name}"] = json_file(entries)
    return files
