"""Real fleets on loopback for the end-to-end tests (used by conftest's fixtures).

A fleet is a demo inventory on a random 127.x.y.* block with free ports, generated, with
simulators, node_exporters, local Prometheus servers and the centre (Prometheus or
VictoriaMetrics) running, and every host present at the centre.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flobs import tools
from flobs.live.demo import LiveFleet, Mode, demo_inventory, start_fleet, write_inventory
from tests.conftest import require_major, require_tool

FleetFactory = Callable[..., LiveFleet]
# Firecracker flushes every 60 s; an hour keeps a served delta fixed for the whole test,
# so the value the simulator serves can be compared exactly with the centre's.
LONG_FLUSH = "1h"


def loopback_block() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.11"


def _major_minor(binary: str) -> str:
    version = tools.tool_version(binary)
    assert version is not None, f"{binary} --version printed no version"
    return ".".join(version.split(".")[:2])


def factory(
    tmp: pytest.TempPathFactory, prometheus_major: int = 3
) -> tuple[FleetFactory, list[LiveFleet]]:
    """A function starting fleets (Prometheus of ``prometheus_major`` on hosts and centre),
    and the list of those started (to stop them)."""
    started: list[LiveFleet] = []

    def make(
        hosts: int,
        *,
        mode: Mode = "federation",
        extra_match: tuple[str, ...] = (),
        extra_defaults: dict[str, Any] | None = None,
        seed: int = 11,
        labels: dict[str, str] | None = None,
        central: dict[str, Any] | None = None,
    ) -> LiveFleet:
        prometheus = require_major("prometheus", prometheus_major)
        require_tool("prometheus-node-exporter")
        if mode == "remote_write":
            require_tool("victoria-metrics")
        workdir = tmp.mktemp(f"fleet-{mode}")
        doc = demo_inventory(
            hosts,
            workdir,
            mode=mode,
            first_address=loopback_block(),
            flush_interval=LONG_FLUSH,
            cluster="e2e",
            prometheus_version=_major_minor(prometheus),
        )
        if labels:
            doc["hosts"][0]["labels"] = labels
        if extra_match:
            doc["central"]["prometheus"]["extra_match"] = list(extra_match)
        if extra_defaults:  # e.g. vars.extra_scrape_jobs for every host
            doc["defaults"].update(extra_defaults)
        doc["central"].update(central or {})
        inventory = workdir / "inventory.yaml"
        write_inventory(doc, inventory)
        live = start_fleet(inventory, workdir, seed=seed)
        started.append(live)
        report = live.wait_for_hosts(timeout=60)
        assert report.ok, [(h.name, h.state, h.detail) for h in report.hosts]
        return live

    return make, started


def inventory_of(live: LiveFleet) -> Path:
    return live.workdir / "inventory.yaml"
