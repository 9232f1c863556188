"""Variable precedence and origin tracking, through the real loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from flobs.errors import InputError
from flobs.inventory import load_fleet

INVENTORY = """\
apiVersion: flobs/v1
cluster: c1
defaults:
  scrape_interval: 20s
  node_exporter: {endpoint: 127.0.0.1:9101, sample_limit: 111}
groups:
  first:
    labels: {zone: a, tier: one}
    vars: {scrape_interval: 30s, node_exporter: {sample_limit: 222}}
  second:
    labels: {tier: two}
    vars: {scrape_interval: 40s}
hosts:
  - name: only-defaults
    address: 10.0.0.1
  - name: first-then-second
    address: 10.0.0.2
    groups: [first, second]
  - name: second-then-first
    address: 10.0.0.3
    groups: [second, first]
  - name: host-wins
    address: 10.0.0.4
    groups: [first, second]
    labels: {tier: host}
    vars: {scrape_interval: 50s, node_exporter: {endpoint: 127.0.0.1:9102}}
central:
  prometheus: {listen: 0.0.0.0:9090}
  loki: {url: https://loki.example/loki/api/v1/push}
  traces: {otlp_endpoint: tempo.example:4317}
  grafana: {url: https://grafana.example}
"""


@pytest.fixture
def fleet(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return load_fleet(path).fleet


def test_defaults_apply_over_builtins(fleet) -> None:  # type: ignore[no-untyped-def]
    h = fleet.host("only-defaults")
    assert h.vars.scrape_interval == "20s"
    assert str(h.vars.node_exporter.endpoint) == "127.0.0.1:9101"
    assert h.vars.node_exporter.sample_limit == 111
    assert str(h.vars.process_exporter.endpoint) == "127.0.0.1:9256"  # built-in default


def test_later_group_wins_and_maps_merge_key_by_key(fleet) -> None:  # type: ignore[no-untyped-def]
    a = fleet.host("first-then-second")
    b = fleet.host("second-then-first")
    assert a.vars.scrape_interval == "40s"
    assert b.vars.scrape_interval == "30s"
    # `first` only set sample_limit: the endpoint from `defaults` survives the merge.
    assert a.vars.node_exporter.sample_limit == 222
    assert str(a.vars.node_exporter.endpoint) == "127.0.0.1:9101"
    assert a.label_dict == {"zone": "a", "tier": "two"}
    assert b.label_dict == {"zone": "a", "tier": "one"}


def test_host_vars_and_labels_win(fleet) -> None:  # type: ignore[no-untyped-def]
    h = fleet.host("host-wins")
    assert h.vars.scrape_interval == "50s"
    assert str(h.vars.node_exporter.endpoint) == "127.0.0.1:9102"
    assert h.vars.node_exporter.sample_limit == 222
    assert h.label_dict == {"zone": "a", "tier": "host"}


def test_default_timeout_follows_a_shorter_interval(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.replace("scrape_interval: 20s", "scrape_interval: 5s"))
    h = load_fleet(path).fleet.host("only-defaults")
    assert (h.vars.scrape_interval, h.vars.scrape_timeout) == ("5s", "5s")


def test_merged_value_error_points_at_the_layer_that_set_it(tmp_path: Path) -> None:
    # The collision comes from group `second`; the error must name its line, not the host's.
    text = INVENTORY.replace(
        "    vars: {scrape_interval: 40s}",
        "    vars: {scrape_interval: 40s, process_exporter: {endpoint: 127.0.0.1:9101}}",
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_fleet(path)
    lines = {p.line for p in info.value.problems}
    assert lines == {
        text.splitlines().index(
            "    vars: {scrape_interval: 40s, process_exporter: {endpoint: 127.0.0.1:9101}}"
        )
        + 1
    }
    assert all(
        p.key_path == "$.groups.second.vars.process_exporter.endpoint" for p in info.value.problems
    )


def test_disabled_debug_endpoint_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        INVENTORY.replace(
            "  scrape_interval: 20s\n",
            "  scrape_interval: 20s\n  flintlockd: {metrics_endpoint: null}\n",
        )
    )
    result = load_fleet(path)
    assert all(h.vars.flintlockd.metrics_endpoint is None for h in result.fleet.hosts)
    assert any("--debug-endpoint" in (w.hint or "") for w in result.warnings)
