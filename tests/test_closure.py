"""Closure: everything the centre reads is produced on the hosts and crosses the wire."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.artifacts import series
from flobs.closure import Gap, closure_gaps, unread, uses
from flobs.generate import render_tree
from flobs.inventory import load_fleet
from flobs.model import Fleet
from tests.conftest import EXAMPLE_INVENTORY

Tree = dict[str, bytes]
REMOTE_WRITE = {
    "mode": "remote_write",
    "remote_write": {"url": "https://metrics.example/api/v1/write"},
}


def example_doc() -> dict[str, Any]:
    return copy.deepcopy(yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8")))


def fleet_of(doc: dict[str, Any], tmp_path: Path) -> Fleet:
    path = tmp_path / "inventory.yaml"
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    return load_fleet(path).fleet


def thousand_hosts(doc: dict[str, Any]) -> dict[str, Any]:
    """1,000 hosts with the example's groups, labels and per-host overrides, cycled."""
    template = doc["hosts"]
    hosts = []
    for i in range(1000):
        host = copy.deepcopy(template[i % len(template)])
        host["name"] = f"fl-{i:04d}"
        host["address"] = f"10.{20 + i // 250}.{i % 250}.10"
        hosts.append(host)
    doc["hosts"] = hosts
    return doc


@pytest.fixture(scope="module")
def example_tree() -> Tree:
    return render_tree(load_fleet(EXAMPLE_INVENTORY).fleet)


def test_example_is_closed(example_tree: Tree) -> None:
    assert closure_gaps(example_tree) == []


def test_uses_cover_dashboards_rules_and_variables(example_tree: Tree) -> None:
    found = uses(example_tree)
    files = {u.file for u in found}
    assert {
        "central/rules/flobs-alerts.yml",
        "central/rules/flobs-recording.yml",
        "grafana/dashboards/flobs-fleet.json",
        "grafana/dashboards/flobs-host.json",
        "grafana/dashboards/flobs-microvm.json",
    } <= files
    names = {u.metric for u in found}
    assert {
        "up",
        "host:microvm_network_bytes:per_second",
        "microvm:firecracker_vcpu_exits:per_second",
        "microvm:cloud_hypervisor_net_rx_bytes:rate5m",
        "host_method:grpc_server_errors:ratio_rate5m",
    } <= names
    assert any(u.where == "variable host" and u.metric == "up" for u in found)
    assert any(u.where == "rule FirecrackerVmmPanic" for u in found)
    # Only Prometheus queries: LogQL/TraceQL never reach the PromQL parser.
    assert not any("level" in u.metric for u in found)


def test_thousand_hosts_are_closed(tmp_path: Path) -> None:
    fleet = fleet_of(thousand_hosts(example_doc()), tmp_path)
    assert len(fleet.hosts) == 1000
    tree = render_tree(fleet)
    assert sum(p.endswith("/rules/flobs-local.yml") for p in tree) == 1000
    assert closure_gaps(tree) == []


def test_remote_write_is_closed_by_the_keep_regex(tmp_path: Path) -> None:
    doc = example_doc()
    doc["central"]["prometheus"].update(REMOTE_WRITE)
    tree = render_tree(fleet_of(doc, tmp_path))
    assert "/federate" not in tree["central/prometheus.yml"].decode()
    assert closure_gaps(tree) == []
    # Narrow every host's keep regex to host:.+ and up: microVM series and the raw
    # allow-list stay home.
    narrowed = dict(tree)
    for path, data in tree.items():
        if path.startswith("hosts/") and path.endswith("/prometheus.yml"):
            text = data.decode()
            text, n = re.subn(r'regex: "host:\.\+\|[^"]*"', 'regex: "host:.+|up"', text)
            assert n == 1, path
            narrowed[path] = text.encode()
    gaps = closure_gaps(narrowed)
    assert gaps
    assert {g.reason for g in gaps} == {"not federated"}
    assert {g.metric for g in gaps if not g.metric.startswith("microvm:")} == {
        "scrape_samples_scraped",
        "prometheus_tsdb_head_series",
    }


def _edit_central(tree: Tree, drop: str) -> Tree:
    doc = yamlio.load(tree["central/prometheus.yml"].decode())
    params = doc["scrape_configs"][0]["params"]
    assert drop in params["match[]"]
    params["match[]"] = [s for s in params["match[]"] if s != drop]
    return {**tree, "central/prometheus.yml": yamlio.dump(doc).encode()}


def test_dropping_a_federation_selector_opens_gaps(example_tree: Tree) -> None:
    gaps = closure_gaps(_edit_central(example_tree, '{__name__=~"microvm:.+"}'))
    assert gaps
    assert {g.reason for g in gaps} == {"not federated"}
    metrics = {g.metric for g in gaps}
    assert "microvm:firecracker_vmm_panic_count:sum" in metrics
    assert all(m.startswith("microvm:") for m in metrics)
    panic = [g for g in gaps if g.metric == "microvm:firecracker_vmm_panic_count:sum"]
    assert (
        Gap(
            "central/rules/flobs-alerts.yml",
            "microvm:firecracker_vmm_panic_count:sum",
            "not federated",
            "rule FirecrackerVmmPanic",
        )
        in panic
    )
    assert any(
        g.file == "grafana/dashboards/flobs-microvm.json" and g.where == "panel 'Failures'"
        for g in panic
    )


def test_dropping_a_local_rule_opens_a_not_produced_gap(example_tree: Tree) -> None:
    tree = dict(example_tree)
    for path, data in example_tree.items():
        if path.endswith("/rules/flobs-local.yml"):
            doc = yamlio.load(data.decode())
            for group in doc["groups"]:
                group["rules"] = [
                    r
                    for r in group["rules"]
                    if r["record"] != "host:microvm_network_bytes:per_second"
                ]
            tree[path] = yamlio.dump(doc).encode()
    gaps = closure_gaps(tree)
    assert gaps == [
        Gap(
            "grafana/dashboards/flobs-fleet.json",
            "host:microvm_network_bytes:per_second",
            "not produced",
            "panel 'Top hosts by microVM network throughput'",
        )
    ]


def _with_panel(tree: Tree, expr: str) -> Tree:
    path = "grafana/dashboards/flobs-host.json"
    board = json.loads(tree[path])
    board["panels"].append(
        {
            "id": 999,
            "title": "Extra",
            "type": "timeseries",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "targets": [{"refId": "A", "expr": expr}],
        }
    )
    return {**tree, path: json.dumps(board).encode()}


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        # produced by the node job, but raw node series are not federated
        ('node_load1{host="$host"}', {("node_load1", "not federated")}),
        # flintlockd has no handling-time histogram (flintlock-facts.md)
        (
            "histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket"
            "[$__rate_interval])))",
            {
                ("grpc_server_handling_seconds_bucket", "not produced"),
                ("grpc_server_handling_seconds_bucket", "not federated"),
            },
        ),
        # allowed raw series pass
        ('prometheus_tsdb_head_series{host=~"$host"}', set()),
    ],
)
def test_raw_metrics_in_a_panel(example_tree: Tree, expr: str, want: set[tuple[str, str]]) -> None:
    gaps = closure_gaps(_with_panel(example_tree, expr))
    assert {(g.metric, g.reason) for g in gaps} == want
    assert all(g.where == "panel 'Extra'" for g in gaps)


def test_a_job_missing_on_every_host_makes_its_metrics_not_produced(tmp_path: Path) -> None:
    doc = example_doc()
    doc["defaults"]["process_exporter"]["enabled"] = False
    tree = render_tree(fleet_of(doc, tmp_path))
    tree = _with_panel(tree, "namedprocess_namegroup_num_procs")
    gaps = {(g.metric, g.reason) for g in closure_gaps(tree)}
    assert ("namedprocess_namegroup_num_procs", "not produced") in gaps


def test_extra_match_federates_a_raw_series(tmp_path: Path) -> None:
    doc = example_doc()
    doc["central"]["prometheus"]["extra_match"] = ['{__name__="node_load1"}']
    tree = _with_panel(render_tree(fleet_of(doc, tmp_path)), 'node_load1{host="$host"}')
    assert closure_gaps(tree) == []


@pytest.mark.parametrize("mode", ["federation", "remote_write"])
def test_every_series_sent_to_the_centre_is_read_there(tmp_path: Path, mode: str) -> None:
    """Both directions: nothing is sent for nothing, nothing read is missing."""
    doc = example_doc()
    if mode == "remote_write":
        doc["central"]["prometheus"].update(REMOTE_WRITE)
    tree = render_tree(fleet_of(doc, tmp_path))
    assert unread(tree) == []
    assert closure_gaps(tree) == []
    local = yamlio.load(tree["hosts/fl-eu1-a-01/rules/flobs-local.yml"].decode())
    records = {r["record"] for g in local["groups"] for r in g["rules"]}
    # The lag rule exists only where something is remote-written (and read: the panel).
    lag = "host:prometheus_remote_storage_behind:seconds"
    assert (lag in records) == (mode == "remote_write")
    assert "host:grpc_server_errors:rate5m" not in records
    read = {u.metric for u in uses(tree)}
    assert {"scrape_samples_scraped", "prometheus_tsdb_head_series"} <= read


@pytest.mark.parametrize("mode", ["federation", "remote_write"])
def test_unread_names_a_series_sent_for_nothing(tmp_path: Path, mode: str) -> None:
    doc = example_doc()
    if mode == "remote_write":
        doc["central"]["prometheus"].update(REMOTE_WRITE)
    doc["central"]["prometheus"]["extra_match"] = ['{__name__="node_load1"}']
    tree = render_tree(fleet_of(doc, tmp_path))
    assert unread(tree) == ["node_load1"]
    # A host rule the centre never reads is named too; a panel reading both closes it.
    path = "hosts/fl-eu1-b-03/rules/flobs-local.yml"
    local = yamlio.load(tree[path].decode())
    local["groups"][0]["rules"].append({"record": "host:spare:sum", "expr": "sum(up)"})
    tree[path] = yamlio.dump(local).encode()
    assert unread(tree) == ["host:spare:sum", "node_load1"]
    assert unread(_with_panel(tree, 'node_load1 + on (host) host:spare:sum{host="$host"}')) == []


def test_federated_raw_allow_list_stays_short() -> None:
    # Every entry is multiplied by the number of hosts at the centre.
    assert len(series.FEDERATED_RAW) <= 5


def test_continuous_verify_series_are_scraped_at_the_centre(tmp_path: Path) -> None:
    doc = example_doc()
    doc["central"]["verify"] = {"enabled": True}
    tree = render_tree(fleet_of(doc, tmp_path))
    assert closure_gaps(tree) == []
    # Without the centre's own scrape job, the alert's input is produced nowhere.
    central = yamlio.load(tree["central/prometheus.yml"].decode())
    central["scrape_configs"] = [
        j for j in central["scrape_configs"] if j["job_name"] != "flobs-verify"
    ]
    cut = {**tree, "central/prometheus.yml": yamlio.dump(central).encode()}
    assert [(g.metric, g.reason) for g in closure_gaps(cut)] == [
        ("flobs_verify_ok", "not federated"),
        ("flobs_verify_ok", "not produced"),
    ]
