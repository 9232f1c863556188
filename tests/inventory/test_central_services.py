"""Missing central services are errors (every agent would send to its own loopback)
unless the inventory opts in with `central.single_host: true`."""

from __future__ import annotations

from flobs.inventory import load_fleet_text
from tests.conftest import REPO

CASE = REPO / "tests/cases/central-services-missing/inventory.yaml"


def test_single_host_opts_in_to_loopback_defaults() -> None:
    text = CASE.read_text().replace("central:\n", "central:\n  single_host: true\n")
    result = load_fleet_text(text.encode(), "inv.yaml")
    assert result.warnings == ()
    central = result.fleet.central
    assert central.prometheus.url == "http://localhost:9090"
    assert central.logs.url == "http://localhost:3100/loki/api/v1/push"
    assert central.traces.otlp_endpoint == "localhost:4317"


def test_single_host_is_documented_in_the_schema_reference() -> None:
    assert "| `central.single_host` | boolean | `false` |" in (REPO / "README.md").read_text()
