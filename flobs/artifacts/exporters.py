"""Exporter configs: node_exporter's web config and process-exporter's process groups."""

from __future__ import annotations

import shlex
from typing import Any

from flobs.artifacts.common import yaml_file
from flobs.model import Host, HostScope

# process-exporter matches `comm`, which the kernel truncates to 15 characters
# ("cloud-hypervisor" is 16), so groups match on the executable's base name.
# Flintlock starts `cloud-hypervisor-static` by default (pkg/defaults; flintlock-facts.md),
# a distribution's package installs `cloud-hypervisor`: one group counts both.
# The VMM groups are named like the providers (vars.providers) they count.
PROCESS_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flintlockd", ("flintlockd",)),
    ("firecracker", ("firecracker",)),
    ("cloud-hypervisor", ("cloud-hypervisor", "cloud-hypervisor-static")),
    ("containerd", ("containerd",)),
)
VMM_GROUPS = frozenset({"firecracker", "cloud-hypervisor"})


def node_exporter_web(host: Host) -> dict[str, Any]:
    ne = host.vars.node_exporter
    doc: dict[str, Any] = {}
    if ne.tls_cert_file and ne.tls_key_file:
        doc["tls_server_config"] = {
            "cert_file": ne.tls_cert_file,
            "key_file": ne.tls_key_file,
            "min_version": "TLS12",
        }
    doc["http_server_config"] = {"http2": True}
    return doc


def process_exporter(host: Host) -> dict[str, Any]:
    """Process groups: flintlockd, containerd and the VMM of each provider the host runs.

    A provider the host does not list gets no group, so its VMMs are not counted:
    FlintlockVmmProcessMismatch then fires if the host runs one anyway, which is how
    a wrong ``providers`` shows up instead of staying a silent gap.
    """
    # `name` is a Go template in process-exporter; ours are literals without `{{`.
    providers = set(host.vars.providers)
    return {
        "process_names": [
            {"name": name, "exe": list(exes)}
            for name, exes in PROCESS_GROUPS
            if name not in VMM_GROUPS or name in providers
        ]
    }


def host_files(scope: HostScope, host: Host) -> dict[str, bytes]:
    base = f"hosts/{host.name}/exporters"
    files: dict[str, bytes] = {}
    v = host.vars
    if v.node_exporter.enabled:
        files[f"{base}/node_exporter-web.yml"] = yaml_file(
            scope,
            f"node_exporter web config for {host.name}: run with\n"
            f"  {shlex.quote(f'--web.listen-address={v.node_exporter.endpoint}')} "
            "--web.config.file=<this file>",
            node_exporter_web(host),
        )
    if v.process_exporter.enabled:
        files[f"{base}/process-exporter.yml"] = yaml_file(
            scope,
            f"process-exporter config for {host.name}: run with\n"
            f"  {shlex.quote(f'-web.listen-address={v.process_exporter.endpoint}')} "
            "-config.path=<this file>",
            process_exporter(host),
        )
    return files
