"""Where every generated file goes on a Flintlock host and on the centre.

One table, used three ways: the run artifacts (units) point their flags at these
paths, the Ansible playbook copies each file here, and docs/deploy.md documents it
(a test runs the playbook and compares what it placed with the doc's table).

Configs live under ``/etc/flobs/<service>/`` so a package's own conffiles in
``/etc/prometheus`` are never overwritten; units and drop-ins under
``/etc/systemd/system``. Paths are absolute on the target machine; the playbook's
``flobs_root`` variable moves them all under another root (tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Side = Literal["host", "central"]
Reload = Literal["reload", "restart", "none"]

SYSTEMD_DIR = "/etc/systemd/system"
DROP_IN = "flobs.conf"  # name of every drop-in flobs writes

# Configs on a Flintlock host.
HOST_PROMETHEUS_DIR = "/etc/flobs/prometheus"
HOST_PROMETHEUS_CONFIG = f"{HOST_PROMETHEUS_DIR}/prometheus.yml"
HOST_PROMETHEUS_WEB = f"{HOST_PROMETHEUS_DIR}/web.yml"
HOST_RULES_DIR = f"{HOST_PROMETHEUS_DIR}/rules"  # prometheus.yml says rules/*.yml
NODE_EXPORTER_WEB = "/etc/flobs/node_exporter/web.yml"
PROCESS_EXPORTER_CONFIG = "/etc/flobs/process-exporter/config.yml"
OTELCOL_CONFIG = "/etc/flobs/otelcol/config.yaml"
# Header values of the collector's OTLP exporter (${env:VAR}); written by the operator.
OTELCOL_ENV = "/etc/flobs/otelcol/otelcol.env"
PROMTAIL_CONFIG = "/etc/flobs/promtail/promtail.yml"
ALLOY_CONFIG = "/etc/flobs/alloy/config.alloy"

# Configs on the centre.
CENTRAL_DIR = "/etc/flobs/central"
CENTRAL_PROMETHEUS_CONFIG = f"{CENTRAL_DIR}/prometheus.yml"  # rules/ and targets/ beside it
CENTRAL_ALERTMANAGER_CONFIG = f"{CENTRAL_DIR}/alertmanager.yml"

# Services. Debian's packages (prometheus, prometheus-node-exporter,
# prometheus-process-exporter, prometheus-alertmanager) ship units running as the
# `prometheus` user; flobs adds a drop-in to them. The others get a unit of their own.
PROMETHEUS_UNIT = "prometheus.service"
NODE_EXPORTER_UNIT = "prometheus-node-exporter.service"
PROCESS_EXPORTER_UNIT = "prometheus-process-exporter.service"
ALERTMANAGER_UNIT = "prometheus-alertmanager.service"
OTELCOL_UNIT = "flobs-otelcol.service"
PROMTAIL_UNIT = "flobs-promtail.service"
ALLOY_UNIT = "flobs-alloy.service"
# vmalert (remote_write mode): Debian's victoria-metrics package ships the binary only.
VMALERT_UNIT = "flobs-vmalert.service"
ALERTMANAGER_STORAGE = "/var/lib/prometheus/alertmanager"  # Debian's default

# Binaries the units run: Debian's paths, and where our collector build is installed.
BIN = {
    PROMETHEUS_UNIT: "/usr/bin/prometheus",
    NODE_EXPORTER_UNIT: "/usr/bin/prometheus-node-exporter",
    PROCESS_EXPORTER_UNIT: "/usr/bin/prometheus-process-exporter",
    ALERTMANAGER_UNIT: "/usr/bin/prometheus-alertmanager",
    OTELCOL_UNIT: "/usr/local/bin/otelcol",
    PROMTAIL_UNIT: "/usr/bin/promtail",
    ALLOY_UNIT: "/usr/bin/alloy",
    VMALERT_UNIT: "/usr/bin/vmalert",
}
DEBIAN_UNITS = frozenset({PROMETHEUS_UNIT, NODE_EXPORTER_UNIT, PROCESS_EXPORTER_UNIT})
DEBIAN_CENTRAL_UNITS = frozenset({PROMETHEUS_UNIT, ALERTMANAGER_UNIT})


@dataclass(frozen=True)
class Placement:
    """One generated file (or glob of files) and where it goes.

    ``source`` is relative to the host's (``hosts/<host>/``) or the centre's
    (``central/``) directory in OUT; a ``*`` in it matches one path segment and is
    carried over to ``dest`` (rules/*.yml → …/rules/*.yml).
    """

    side: Side
    source: str
    dest: str
    unit: str | None  # the service that reads it; None: nothing to tell
    on_change: Reload
    validate: str | None = None  # an Ansible `validate:` command (%s is the new file)
    also_reload: tuple[str, ...] = ()  # other services that read it (when installed)


def unit_path(unit: str) -> str:
    if unit in DEBIAN_UNITS | DEBIAN_CENTRAL_UNITS:
        return f"{SYSTEMD_DIR}/{unit}.d/{DROP_IN}"
    return f"{SYSTEMD_DIR}/{unit}"


def unit_source(unit: str) -> str:
    """Where the unit or drop-in is in OUT, relative to the host's or centre's directory."""
    return "systemd/" + unit_path(unit).removeprefix(SYSTEMD_DIR + "/")


# The record of what the playbook placed on a machine (hosts/<host>/placed.json,
# central/placed.json in OUT): the next run removes what the record lists and the new
# one does not. Written last, so it only names files a finished run placed.
PLACED_SOURCE = "placed.json"
PLACED_RECORD: dict[Side, str] = {
    "host": "/etc/flobs/placed-host.json",
    "central": "/etc/flobs/placed-central.json",
}
# A unit of flobs' own: stopped and disabled before its file is removed.
OWN_UNIT_PATH = rf"^{SYSTEMD_DIR}/flobs-[A-Za-z0-9_.-]+\.service$"
# What a record may name: the playbook removes nothing else, whatever a record says.
OWNED_PATH = (
    r"^(/etc/flobs/.+"
    rf"|{SYSTEMD_DIR}/flobs-[A-Za-z0-9_.-]+\.service"
    rf"|{SYSTEMD_DIR}/[A-Za-z0-9_.@-]+\.service\.d/{re.escape(DROP_IN)})$"
)
NOT_OWNED_PATH = r"/\.\.?/"  # no way out of those directories

PROMTOOL = "{{ flobs_promtool }}"
PLACEMENTS: tuple[Placement, ...] = (
    Placement(
        "host",
        "prometheus.yml",
        HOST_PROMETHEUS_CONFIG,
        PROMETHEUS_UNIT,
        "reload",
        f"{PROMTOOL} check config %s",
    ),
    Placement(
        "host",
        "rules/*.yml",
        f"{HOST_RULES_DIR}/*.yml",
        PROMETHEUS_UNIT,
        "reload",
        f"{PROMTOOL} check rules %s",
    ),
    # exporter-toolkit reads the web config on every request: no reload needed.
    Placement(
        "host",
        "prometheus-web.yml",
        HOST_PROMETHEUS_WEB,
        PROMETHEUS_UNIT,
        "none",
        f"{PROMTOOL} check web-config %s",
    ),
    Placement(
        "host",
        "exporters/node_exporter-web.yml",
        NODE_EXPORTER_WEB,
        NODE_EXPORTER_UNIT,
        "none",
        f"{PROMTOOL} check web-config %s",
    ),
    Placement(
        "host",
        "exporters/process-exporter.yml",
        PROCESS_EXPORTER_CONFIG,
        PROCESS_EXPORTER_UNIT,
        "restart",
    ),
    Placement(
        "host",
        "otelcol.yaml",
        OTELCOL_CONFIG,
        OTELCOL_UNIT,
        "restart",
        "{{ flobs_otelcol }} validate --config=%s",
    ),
    Placement("host", "promtail.yml", PROMTAIL_CONFIG, PROMTAIL_UNIT, "restart"),
    Placement("host", "config.alloy", ALLOY_CONFIG, ALLOY_UNIT, "restart"),
    *(
        Placement("host", unit_source(u), unit_path(u), u, "restart")
        for u in (
            PROMETHEUS_UNIT,
            NODE_EXPORTER_UNIT,
            PROCESS_EXPORTER_UNIT,
            OTELCOL_UNIT,
            PROMTAIL_UNIT,
            ALLOY_UNIT,
        )
    ),
    Placement(
        "central",
        "prometheus.yml",
        CENTRAL_PROMETHEUS_CONFIG,
        PROMETHEUS_UNIT,
        "reload",
        f"{PROMTOOL} check config %s",
    ),
    Placement(
        "central",
        "rules/*.yml",
        f"{CENTRAL_DIR}/rules/*.yml",
        PROMETHEUS_UNIT,
        "reload",
        f"{PROMTOOL} check rules %s",
        also_reload=(VMALERT_UNIT,),  # remote_write mode: vmalert evaluates them
    ),
    # file_sd re-reads target files when they change (refresh_interval as a fallback).
    Placement("central", "targets/*.json", f"{CENTRAL_DIR}/targets/*.json", None, "none"),
    Placement(
        "central",
        "alertmanager.yml",
        CENTRAL_ALERTMANAGER_CONFIG,
        ALERTMANAGER_UNIT,
        "reload",
        "{{ flobs_amtool }} check-config %s",
    ),
    *(
        Placement("central", unit_source(u), unit_path(u), u, "restart")
        for u in (PROMETHEUS_UNIT, ALERTMANAGER_UNIT, VMALERT_UNIT)
    ),
)
