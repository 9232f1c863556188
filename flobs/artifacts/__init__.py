"""Artifacts: one module per target; each builds data, then bytes, never prints.

A *host artifact* module has ``host_files(scope, host) -> {path: bytes}``: it gets
the ``HostScope`` (the fleet-wide settings host files read) and the ``Host``, never the
``Fleet``, because incremental generate skips a host whose digest of those two objects
is unchanged (flobs/incremental.py). A *fleet artifact* module has
``fleet_files(fleet) -> {path: bytes}``. Paths are relative to
OUT and use ``/``. Register new modules in the two tuples below.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from flobs.artifacts import (
    alertmanager,
    alloy,
    ansible,
    central,
    central_rules,
    dashboards,
    exporters,
    extensions,
    grafana_provisioning,
    otelcol,
    prometheus_local,
    promtail,
    units,
)
from flobs.model import Fleet, Host, HostScope

HostArtifact = Callable[[HostScope, Host], dict[str, bytes]]
FleetArtifact = Callable[[Fleet], dict[str, bytes]]

HOST_MODULES: tuple[ModuleType, ...] = (
    prometheus_local,
    exporters,
    promtail,
    alloy,
    otelcol,
    units,
)
FLEET_MODULES: tuple[ModuleType, ...] = (
    central,
    central_rules,
    alertmanager,
    dashboards,
    grafana_provisioning,
    extensions,
    units,
    ansible,
)


def host_artifacts() -> list[HostArtifact]:
    return [m.host_files for m in HOST_MODULES]


def fleet_artifacts() -> list[FleetArtifact]:
    return [m.fleet_files for m in FLEET_MODULES]
