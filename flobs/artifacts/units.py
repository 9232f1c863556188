"""Run artifacts: the systemd units (or drop-ins) that start each process with its flags.

Every flag comes from the inventory and points at the documented host layout
(``flobs.layout``). Debian's packaged services (prometheus, prometheus-node-exporter,
prometheus-process-exporter, prometheus-alertmanager) keep their unit, user and
hardening; a drop-in replaces only ``ExecStart``. Processes no Debian package ships
(the collector, Promtail, Alloy) get a unit of their own with a dynamic user.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from flobs import layout
from flobs.artifacts.alertmanager import vmalert_args
from flobs.artifacts.common import header
from flobs.model import Alertmanager, Endpoint, Fleet, Host, HostScope
from flobs.versions import retention_in_config

# systemd's own hardening that does not get in these programs' way: they read
# configs and /proc, write only their data directory, and never need new privileges.
HARDENING = (
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "full"),
    ("ProtectHome", "read-only"),
    ("PrivateTmp", "yes"),
)
# For units of our own: the data directories are named, so everything else is read-only.
STRICT_HARDENING = (
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "read-only"),
    ("PrivateTmp", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectControlGroups", "yes"),
    ("RestrictSUIDSGID", "yes"),
)
_PLAIN_ARG = re.compile(r"[A-Za-z0-9_./:=@+,\[\]-]+")


class Specifier(str):
    """An argument that uses a systemd specifier on purpose (``%d``, the credentials
    directory): written as it is. Build it only from plain characters."""


def quote(arg: str) -> str:
    """One ExecStart argument, as systemd splits and expands it back to ``arg``.

    systemd expands ``%`` specifiers and ``$VAR`` in command lines (systemd.service
    "Command lines"), so both are doubled; anything beyond plain characters is
    double-quoted with C escapes.
    """
    if isinstance(arg, Specifier):
        assert _PLAIN_ARG.fullmatch(arg.replace("%", "")), arg
        return str(arg)
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_ARG.fullmatch(escaped):
        return escaped
    out = []
    for ch in escaped:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def exec_start(argv: Sequence[str]) -> str:
    return " \\\n    ".join(quote(a) for a in argv)


def _comment(fleet: Fleet | HostScope, what: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in header(fleet, what).splitlines())


Entries = Sequence[tuple[str, str]]


def unit_file(
    fleet: Fleet | HostScope, what: str, sections: Sequence[tuple[str, Entries]]
) -> bytes:
    """A unit or drop-in: the header as comments, then each ``[section]`` with its
    ``key=value`` lines, a blank line between sections."""
    lines = [_comment(fleet, what)]
    for i, (name, entries) in enumerate(sections):
        lines.append(("\n" if i else "") + f"[{name}]\n")
        lines += [f"{k}={v}\n" for k, v in entries]
    return "".join(lines).encode("utf-8")


# Debian's prometheus.service already has ProtectHome=true (and the rest of HARDENING):
# a drop-in's read-only would loosen it. The exporters' and Alertmanager's units have none.
PACKAGE_HARDENED = {layout.PROMETHEUS_UNIT: frozenset({"ProtectHome"})}


def drop_in(fleet: Fleet | HostScope, what: str, unit: str, argv: Sequence[str]) -> bytes:
    """Replace a packaged unit's ExecStart (the empty assignment clears the package's)."""
    keep = PACKAGE_HARDENED.get(unit, frozenset())
    hardening = [(k, v) for k, v in HARDENING if k not in keep]
    service = [("ExecStart", ""), ("ExecStart", exec_start(argv)), *hardening]
    return unit_file(fleet, what, [("Service", service)])


def own_unit(
    fleet: Fleet | HostScope,
    what: str,
    description: str,
    argv: Sequence[str],
    *,
    service: Entries = (),
) -> bytes:
    unit = [
        ("Description", description.replace("%", "%%")),
        ("Wants", "network-online.target"),
        ("After", "network-online.target"),
    ]
    own_service = [
        ("ExecStart", exec_start(argv)),
        ("Restart", "on-failure"),
        # No package creates a user for these: systemd makes one per start.
        ("DynamicUser", "yes"),
        *service,
        *STRICT_HARDENING,
    ]
    install = [("WantedBy", "multi-user.target")]
    return unit_file(fleet, what, [("Unit", unit), ("Service", own_service), ("Install", install)])


def prometheus_argv(
    config: str, listen: Endpoint, storage_path: str, retention: str, version: str
) -> list[str]:
    """The local and the central Prometheus differ only in these."""
    argv = [
        layout.BIN[layout.PROMETHEUS_UNIT],
        f"--config.file={config}",
        f"--web.listen-address={listen}",
        f"--storage.tsdb.path={storage_path}",
    ]
    if not retention_in_config(version):
        argv.append(f"--storage.tsdb.retention.time={retention}")
    return argv


def local_prometheus_argv(host: Host) -> list[str]:
    p = host.vars.local_prometheus
    argv = prometheus_argv(
        layout.HOST_PROMETHEUS_CONFIG, p.listen, p.storage_path, p.retention, p.version
    )
    if p.web is not None:
        argv.append(f"--web.config.file={layout.HOST_PROMETHEUS_WEB}")
    return argv


def central_prometheus_argv(fleet: Fleet) -> list[str]:
    p = fleet.central.prometheus
    return prometheus_argv(
        layout.CENTRAL_PROMETHEUS_CONFIG, p.listen, p.storage_path, p.retention, p.version
    )


def _state_directory(path: str) -> tuple[str, str]:
    """A writable data directory for a dynamic user: systemd creates and owns it
    under /var/lib (StateDirectory); elsewhere it must exist and be named writable."""
    if path.startswith("/var/lib/") and path.strip("/").count("/") >= 2:
        return ("StateDirectory", path.removeprefix("/var/lib/").rstrip("/"))
    return ("ReadWritePaths", path)


# journald/file sources: the journal needs systemd-journal, /var/log files adm.
JOURNAL_READER = ("SupplementaryGroups", "systemd-journal adm")


def host_files(scope: HostScope, host: Host) -> dict[str, bytes]:
    v = host.vars
    base = f"hosts/{host.name}/"
    files: dict[str, bytes] = {}

    def put(unit: str, data: bytes) -> None:
        files[base + layout.unit_source(unit)] = data

    put(
        layout.PROMETHEUS_UNIT,
        drop_in(
            scope,
            f"Local Prometheus of {host.name}: flobs' config, listen address, storage and "
            "retention.\nA drop-in for Debian's prometheus.service (user prometheus).",
            layout.PROMETHEUS_UNIT,
            local_prometheus_argv(host),
        ),
    )
    if v.node_exporter.enabled:
        put(
            layout.NODE_EXPORTER_UNIT,
            drop_in(
                scope,
                f"node_exporter of {host.name}; a drop-in for Debian's "
                "prometheus-node-exporter.service.",
                layout.NODE_EXPORTER_UNIT,
                [
                    layout.BIN[layout.NODE_EXPORTER_UNIT],
                    f"--web.listen-address={v.node_exporter.endpoint}",
                    f"--web.config.file={layout.NODE_EXPORTER_WEB}",
                ],
            ),
        )
    if v.process_exporter.enabled:
        put(
            layout.PROCESS_EXPORTER_UNIT,
            drop_in(
                scope,
                f"process-exporter of {host.name}; a drop-in for Debian's "
                "prometheus-process-exporter.service.",
                layout.PROCESS_EXPORTER_UNIT,
                [
                    layout.BIN[layout.PROCESS_EXPORTER_UNIT],
                    f"-web.listen-address={v.process_exporter.endpoint}",
                    f"-config.path={layout.PROCESS_EXPORTER_CONFIG}",
                ],
            ),
        )
    if v.otelcol.enabled:
        service = [
            # OTLP header values (${env:VAR} in the config) come from this file, which
            # the operator writes; "-" lets the collector start without one.
            ("EnvironmentFile", f"-{layout.OTELCOL_ENV}"),
            JOURNAL_READER,
        ]
        if v.otelcol.logs_pipeline:
            service.append(_state_directory(v.logs.positions_dir))
        put(
            layout.OTELCOL_UNIT,
            own_unit(
                scope,
                f"OpenTelemetry Collector of {host.name}.",
                f"OpenTelemetry Collector for Flintlock host {host.name} (flobs)",
                [layout.BIN[layout.OTELCOL_UNIT], f"--config={layout.OTELCOL_CONFIG}"],
                service=service,
            ),
        )
    agent = host.log_agent
    if agent == "promtail":
        put(
            layout.PROMTAIL_UNIT,
            own_unit(
                scope,
                f"Promtail of {host.name}.",
                f"Promtail shipping flintlockd logs of {host.name} (flobs)",
                [layout.BIN[layout.PROMTAIL_UNIT], f"-config.file={layout.PROMTAIL_CONFIG}"],
                service=[JOURNAL_READER, _state_directory(v.logs.positions_dir)],
            ),
        )
    elif agent == "alloy":
        put(
            layout.ALLOY_UNIT,
            own_unit(
                scope,
                f"Grafana Alloy of {host.name}: its listen address and data directory are "
                "flags, not config.",
                f"Grafana Alloy shipping flintlockd logs of {host.name} (flobs)",
                [
                    layout.BIN[layout.ALLOY_UNIT],
                    "run",
                    f"--server.http.listen-addr={v.logs.listen}",
                    f"--storage.path={v.logs.positions_dir}",
                    layout.ALLOY_CONFIG,
                ],
                service=[JOURNAL_READER, _state_directory(v.logs.positions_dir)],
            ),
        )
    return files


def alertmanager_argv(am: Alertmanager) -> list[str]:
    argv = [
        layout.BIN[layout.ALERTMANAGER_UNIT],
        f"--config.file={layout.CENTRAL_ALERTMANAGER_CONFIG}",
        f"--web.listen-address={am.listen}",
        f"--storage.path={layout.ALERTMANAGER_STORAGE}",
    ]
    if not am.cluster_peers:
        # Empty turns gossip off; the default binds 0.0.0.0:9094 (Alertmanager --help).
        return [*argv, "--cluster.listen-address="]
    argv.append(f"--cluster.listen-address={am.cluster_listen}")
    return argv + [f"--cluster.peer={peer}" for peer in am.cluster_peers]


# vmalert flags naming a secret file: a dynamic user cannot read the operator's
# root-only file, so systemd hands the service a copy (LoadCredential, %d).
_SECRET_FLAG = re.compile(
    r"(-[A-Za-z]+\.(?:bearerTokenFile|basicAuth\.passwordFile|tlsKeyFile))=(.+)", re.S
)


def vmalert_unit_argv(fleet: Fleet) -> tuple[list[str], list[tuple[str, str]]]:
    """vmalert's flags in the layout (central/vmalert.args' data), and the credentials
    its secret files become."""
    argv: list[str] = [layout.BIN[layout.VMALERT_UNIT]]
    credentials: list[tuple[str, str]] = []
    for arg in vmalert_args(fleet, rules=f"{layout.CENTRAL_DIR}/rules/*.yml"):
        m = _SECRET_FLAG.fullmatch(arg)
        if m is None:
            argv.append(arg)
            continue
        name = m[1].lstrip("-")
        credentials.append(("LoadCredential", f"{name}:{m[2].replace('%', '%%')}"))
        argv.append(Specifier(f"{m[1]}=%d/{name}"))
    return argv, credentials


def fleet_files(fleet: Fleet) -> dict[str, bytes]:
    files = {
        "central/" + layout.unit_source(layout.PROMETHEUS_UNIT): drop_in(
            fleet,
            "Central Prometheus: flobs' config, listen address, storage and retention.\n"
            "A drop-in for Debian's prometheus.service (user prometheus).",
            layout.PROMETHEUS_UNIT,
            central_prometheus_argv(fleet),
        )
    }
    am = fleet.central.alertmanager
    if am is not None and am.generated:
        files["central/" + layout.unit_source(layout.ALERTMANAGER_UNIT)] = drop_in(
            fleet,
            "Alertmanager with flobs' config (central/alertmanager.yml), listen address and\n"
            "gossip. A drop-in for Debian's prometheus-alertmanager.service (user\n"
            "prometheus); its ARGS in /etc/default/prometheus-alertmanager are not used.",
            layout.ALERTMANAGER_UNIT,
            alertmanager_argv(am),
        )
    if am is not None and fleet.central.prometheus.mode == "remote_write":
        argv, credentials = vmalert_unit_argv(fleet)
        files["central/" + layout.unit_source(layout.VMALERT_UNIT)] = own_unit(
            fleet,
            "vmalert: the central rules evaluated against the store, notifying the\n"
            "Alertmanager (the flags of central/vmalert.args, in the host layout).",
            f"vmalert evaluating the {fleet.cluster} fleet's central rules (flobs)",
            argv,
            # vmalert re-reads its rule files on SIGHUP: the playbook reloads it when
            # central/rules/*.yml change (systemctl reload needs ExecReload).
            service=[("ExecReload", "/bin/kill -HUP $MAINPID"), *credentials],
        )
    return files
