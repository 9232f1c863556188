"""Fixtures for the simulator tests: a one-host fleet on a private loopback address."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from flobs.inventory import load_fleet
from flobs.live.demo import demo_inventory, write_inventory
from flobs.model import Fleet


def loopback_base() -> str:
    """A random 127.x.y.11, so parallel runs (and other engineers) do not collide."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.11"


@pytest.fixture
def sim_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    write_inventory(demo_inventory(1, tmp_path, first_address=loopback_base()), path)
    return path


@pytest.fixture
def sim_fleet(sim_inventory: Path) -> Fleet:
    return load_fleet(sim_inventory).fleet
