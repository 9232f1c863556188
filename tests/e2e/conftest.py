"""Fixtures starting real fleets on loopback; everything stops when the scope ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.fake_prometheus import answering_server  # noqa: F401 - a fixture
from tests.e2e.fleet import FleetFactory, factory

# Every live test runs against both Prometheus majors flobs writes for: 2.42 (Debian)
# and 3.x (`make tools`); they read the same files differently (docs/testing.md).
_MAJOR_PARAMS = {"params": [2, 3], "ids": ["prometheus2", "prometheus3"]}


@pytest.fixture(scope="module", **_MAJOR_PARAMS)
def module_fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FleetFactory]:
    make, started = factory(tmp_path_factory, request.param)
    yield make
    for live in started:
        live.stop()


@pytest.fixture(**_MAJOR_PARAMS)
def fleet_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FleetFactory]:
    make, started = factory(tmp_path_factory, request.param)
    yield make
    for live in started:
        live.stop()
