"""Fixtures starting real fleets on loopback; everything stops when the scope ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.fleet import FleetFactory, factory


@pytest.fixture(scope="module")
def module_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetFactory]:
    make, started = factory(tmp_path_factory)
    yield make
    for live in started:
        live.stop()


@pytest.fixture
def fleet_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetFactory]:
    make, started = factory(tmp_path_factory)
    yield make
    for live in started:
        live.stop()
