"""One corruption of a generated tree per check: exactly that check fires.

Every test starts from a private copy of `flobs generate examples/inventory.yaml`
(plus small crafted Grafana files while the dashboard generator is not there), breaks
one thing, re-hashes the manifest, and asserts the set of checks reporting errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flobs.problems import Severity
from tests.checks.conftest import (
    GOOD_PANELS,
    Run,
    dashboard,
    fired,
    panel,
    read_yaml,
    rehash,
    write_json,
    write_yaml,
)
from tests.conftest import require_major, require_tool

HOST = "hosts/fl-eu1-a-01"
PROM = f"{HOST}/prometheus.yml"
RULES = f"{HOST}/rules/flobs-local.yml"
PROM_242 = "hosts/fl-eu1-a-02/prometheus.yml"  # examples/inventory.yaml pins it to 2.42
RULES_242 = "hosts/fl-eu1-a-02/rules/flobs-local.yml"


def _job(doc: dict, name: str) -> dict:
    return next(j for j in doc["scrape_configs"] if j["job_name"] == name)


def _edit_yaml(out: Path, rel: str, change) -> None:  # type: ignore[no-untyped-def]
    doc = read_yaml(out, rel)
    change(doc)
    write_yaml(out, rel, doc)
    rehash(out)


def _dashboard(out: Path, panels: list[dict]) -> None:
    write_json(out, "grafana/dashboards/test.json", dashboard(panels))
    rehash(out)


def test_clean_tree_has_no_findings(tree: Path, run: Run) -> None:
    result = run(tree, tools="auto")
    assert [p.render() for p in result.problems] == []
    assert not result.failed


def test_hand_edited_file_is_named(tree: Path, run: Run) -> None:
    path = tree / PROM
    path.write_text(path.read_text().replace("sample_limit: 10000", "sample_limit: 99999"))
    result = run(tree)
    assert fired(result) == {"manifest-hash"}
    assert [p.file for p in result.problems] == [PROM]


def test_missing_file(tree: Path, run: Run) -> None:
    (tree / HOST / "exporters/process-exporter.yml").unlink()
    result = run(tree)
    assert fired(result) == {"manifest-files"}
    assert result.problems[0].file == f"{HOST}/exporters/process-exporter.yml"


def test_unlisted_file_is_a_warning(tree: Path, run: Run) -> None:
    (tree / "central/rules/mine.txt").write_text("hello\n")
    result = run(tree)
    assert fired(result) == set()
    assert fired(result, Severity.WARNING) == {"manifest-files"}
    assert not result.failed
    assert run(tree, strict=True).failed


def test_file_that_does_not_parse(tree: Path, run: Run) -> None:
    (tree / RULES).write_text("groups:\n  - name: x\n\trules: []\n")
    rehash(tree)
    result = run(tree)
    assert fired(result) == {"file-parses"}


def test_schema_unknown_key(tree: Path, run: Run) -> None:
    _edit_yaml(tree, PROM, lambda d: _job(d, "node").update(scrape_timout="5s"))
    result = run(tree)
    assert fired(result) == {"schema"}
    (problem,) = result.problems
    assert "scrape_timout" in problem.message
    assert problem.file == PROM and problem.line is not None


def test_schema_does_not_echo_values(tree: Path, run: Run) -> None:
    def leak(doc: dict) -> None:
        doc["datasources"][1]["isDefault"] = "hunter2-secret"  # pasted into the wrong key

    _edit_yaml(tree, "grafana/provisioning/datasources/flobs.yaml", leak)
    result = run(tree)
    assert fired(result) == {"schema"}
    assert all("hunter2" not in p.message for p in result.problems)


def test_duplicate_job_name(tree: Path, run: Run) -> None:
    _edit_yaml(tree, PROM, lambda d: _job(d, "process").update(job_name="node"))
    result = run(tree)
    assert fired(result) == {"prom-job-unique"}
    assert "'node' is used twice" in result.problems[0].message


def test_timeout_longer_than_interval(tree: Path, run: Run) -> None:
    _edit_yaml(
        tree, PROM, lambda d: _job(d, "node").update(scrape_interval="5s", scrape_timeout="8s")
    )
    result = run(tree)
    assert fired(result) == {"prom-timeout"}


def test_rule_files_pattern_matches_nothing(tree: Path, run: Run) -> None:
    _edit_yaml(tree, PROM, lambda d: d.update(rule_files=["rule/*.yml"]))
    result = run(tree)
    assert fired(result) == {"prom-rule-files"}


def test_external_label_of_another_host(tree: Path, run: Run) -> None:
    _edit_yaml(tree, PROM, lambda d: d["global"]["external_labels"].update(host="fl-eu1-a-02"))
    result = run(tree)
    assert fired(result) == {"prom-external-labels"}


def test_external_label_missing(tree: Path, run: Run) -> None:
    _edit_yaml(
        tree, "central/prometheus.yml", lambda d: d["global"]["external_labels"].pop("cluster")
    )
    result = run(tree)
    assert fired(result) == {"prom-external-labels"}


def test_key_newer_than_target_prometheus(tree: Path, run: Run) -> None:
    # The example keeps this host on Debian's 2.42; its header says so.
    _edit_yaml(tree, PROM_242, lambda d: _job(d, "node").update(keep_dropped_targets=100))
    result = run(tree)
    assert fired(result) == {"prom-version-keys"}
    assert "2.47" in result.problems[0].message and "2.42" in result.problems[0].message


def test_broken_promql_in_a_rule(tree: Path, run: Run) -> None:
    _edit_yaml(tree, RULES, lambda d: d["groups"][0]["rules"][0].update(expr="sum(rate(x[5m])"))
    result = run(tree)
    assert fired(result) == {"promql-parse"}


def test_broken_promql_in_a_dashboard(tree: Path, run: Run) -> None:
    _dashboard(tree, [*GOOD_PANELS[:2], panel(3, "sum(rate(up[$__rate_interval])", y=8)])
    result = run(tree)
    assert fired(result) == {"promql-parse"}
    (problem,) = result.problems
    assert problem.file == "grafana/dashboards/test.json"
    assert problem.key_path == "$.panels[2].targets[0].expr"


def test_rate_over_firecracker_deltas(tree: Path, run: Run) -> None:
    _dashboard(
        tree, [*GOOD_PANELS, panel(4, "sum(rate(firecracker_net_rx_bytes_count[5m]))", x=12, y=8)]
    )
    result = run(tree)
    assert "firecracker-no-rate" in fired(result)
    assert fired(result) - {"xref-closure"} == {"firecracker-no-rate"}


def test_duplicate_panel_id(tree: Path, run: Run) -> None:
    _dashboard(tree, [*GOOD_PANELS[:2], {**GOOD_PANELS[2], "id": 1}])
    assert fired(run(tree)) == {"dash-panel-ids"}


def test_overlapping_panels(tree: Path, run: Run) -> None:
    _dashboard(tree, [*GOOD_PANELS[:2], panel(3, "up", x=6, y=4)])
    result = run(tree)
    assert fired(result) == {"dash-gridpos"}


def test_datasource_uid_nobody_provisions(tree: Path, run: Run) -> None:
    other = {"type": "prometheus", "uid": "prom-old"}
    _dashboard(tree, [*GOOD_PANELS[:2], panel(3, "up", y=8, ds=other)])
    result = run(tree)
    assert fired(result) == {"dash-datasource"}
    assert "'prom-old' is not provisioned" in result.problems[0].message


def test_panel_without_unit_is_a_warning(tree: Path, run: Run) -> None:
    _dashboard(tree, [*GOOD_PANELS[:2], panel(3, "up", y=8, unit=None)])
    result = run(tree)
    assert fired(result) == set()
    assert fired(result, Severity.WARNING) == {"dash-units"}


def test_host_missing_from_central_targets(tree: Path, run: Run) -> None:
    path = tree / "central/targets/eu1-a.json"
    entries = json.loads(path.read_text())
    path.write_text(json.dumps([e for e in entries if e["labels"]["host"] != "fl-eu1-a-02"]))
    rehash(tree)
    result = run(tree)
    assert fired(result) == {"xref-hosts"}
    assert "'fl-eu1-a-02'" in result.problems[0].message


def test_host_checks_need_the_inventory(tree: Path, run: Run) -> None:
    path = tree / "central/targets/eu1-a.json"
    path.write_text("[]\n")
    rehash(tree)
    result = run(tree, inventory=None)
    assert fired(result) == set()
    assert any("xref-hosts" in note for note in result.notes)


def test_port_collision(tree: Path, run: Run) -> None:
    def collide(doc: dict) -> None:
        _job(doc, "node")["static_configs"][0]["targets"] = ["127.0.0.1:9256"]

    _edit_yaml(tree, PROM, collide)
    result = run(tree)
    assert fired(result) == {"xref-ports"}
    assert "9256" in result.problems[0].message


def test_port_collision_with_flintlockd_grpc(tree: Path, run: Run) -> None:
    def collide(doc: dict) -> None:
        _job(doc, "node")["static_configs"][0]["targets"] = ["127.0.0.1:9090"]

    _edit_yaml(tree, PROM, collide)
    result = run(tree)
    assert fired(result) == {"xref-ports"}
    assert "flintlockd.grpc_endpoint" in result.problems[0].message


def test_datasource_provisioned_twice(tree: Path, run: Run) -> None:
    def twice(doc: dict) -> None:
        doc["datasources"].append({**doc["datasources"][0], "name": "Prometheus 2"})

    _edit_yaml(tree, "grafana/provisioning/datasources/flobs.yaml", twice)
    assert fired(run(tree)) == {"xref-datasources"}


def test_correlation_to_unknown_datasource(tree: Path, run: Run) -> None:
    def dangling(doc: dict) -> None:
        doc["datasources"][2]["jsonData"]["tracesToLogsV2"]["datasourceUid"] = "loki-gone"

    _edit_yaml(tree, "grafana/provisioning/datasources/flobs.yaml", dangling)
    result = run(tree)
    assert fired(result) == {"xref-datasources"}


# ------------------------------------------------------------------ closure (flobs.closure)


def _closure_available() -> None:
    try:
        import flobs.closure  # noqa: F401
    except ImportError:
        pytest.skip("MISSING MODULE: flobs.closure (metric closure) is not in this build yet")


def test_central_alert_on_a_metric_that_is_not_federated(tree: Path, run: Run) -> None:
    _closure_available()

    def alert(doc: dict) -> None:
        doc["groups"][0]["rules"].append({"alert": "LoadHigh", "expr": "node_load1 > 4"})

    _edit_yaml(tree, "central/rules/flobs-alerts.yml", alert)
    result = run(tree)
    # An untested alert in a generated rules file is a coverage error too.
    assert fired(result) == {"xref-closure", "rule-test-coverage"}
    assert any("node_load1" in p.message for p in result.problems)


def test_dashboard_metric_nobody_produces(tree: Path, run: Run) -> None:
    _closure_available()
    _dashboard(tree, [*GOOD_PANELS[:2], panel(3, "sum(host:nobody_makes_this:rate5m)", y=8)])
    result = run(tree)
    assert fired(result) == {"xref-closure"}
    assert any("host:nobody_makes_this:rate5m" in p.message for p in result.problems)


# ------------------------------------------------------------ logs / otelcol (other checks)


def test_otel_pipeline_naming_an_undefined_exporter(tree: Path, run: Run) -> None:
    rel = f"{HOST}/otelcol.yaml"
    if not (tree / rel).exists():
        pytest.skip("MISSING ARTIFACT: no otelcol.yaml generated in this build")
    _edit_yaml(
        tree,
        rel,
        lambda d: d["service"]["pipelines"]["traces"]["exporters"].append("otlphttp/nowhere"),
    )
    assert fired(run(tree)) == {"otelcol-references"}


def test_loki_label_on_vmid(tree: Path, run: Run) -> None:
    rel = f"{HOST}/promtail.yml"
    if not (tree / rel).exists():
        pytest.skip("MISSING ARTIFACT: no promtail.yml generated in this build")

    def vmid_label(doc: dict) -> None:
        stages = doc["scrape_configs"][0]["pipeline_stages"]
        next(s for s in stages if "labels" in s)["labels"]["vmid"] = None

    _edit_yaml(tree, rel, vmid_label)
    result = run(tree)
    assert fired(result) == {"logs-label-cardinality"}
    assert any("vmid" in p.message for p in result.problems)


# ------------------------------------------------------------------------ real promtool


@pytest.mark.tools
def test_promtool_rejects_a_bad_relabel_regex(tree: Path, run: Run) -> None:
    require_tool("promtool")
    _edit_yaml(
        tree,
        PROM,
        lambda d: _job(d, "flintlock-metrics")["metric_relabel_configs"][0].update(regex="([a-z"),
    )
    result = run(tree, tools="auto")
    assert fired(result) == {"promtool-config"}
    (problem,) = result.problems
    assert problem.file == PROM and "regexp" in problem.message


@pytest.mark.tools
def test_promtool_rejects_an_invalid_label_name(tree: Path, run: Run) -> None:
    # Prometheus 2 refuses a label name starting with a digit; 3 accepts any UTF-8 name.
    # The 2.42 host's file goes to promtool 2, so the finding proves the version routing.
    require_major("promtool", 2)
    require_major("promtool", 3)
    for rules in (RULES, RULES_242):
        _edit_yaml(tree, rules, lambda d: d["groups"][1]["rules"][0].update(labels={"0bad": "x"}))
    result = run(tree, tools="auto")
    assert fired(result) == {"promtool-rules"}
    (problem,) = result.problems
    assert problem.file == RULES_242
    assert problem.message == (
        'promtool: group "flobs-processes", rule 1, '
        '"host:process_cpu_seconds:rate5m": invalid label name: 0bad'
    )


@pytest.mark.tools
def test_promtool_unit_test_failure(tree: Path, run: Run) -> None:
    require_tool("promtool")
    rel = "central/tests/flobs-alerts.test.yml"
    if not (tree / rel).exists():
        pytest.skip("MISSING ARTIFACT: no central promtool tests generated in this build")

    def wrong(doc: dict) -> None:
        doc["tests"][0]["alert_rule_test"][0]["exp_alerts"][0]["exp_labels"]["severity"] = "info"

    _edit_yaml(tree, rel, wrong)
    result = run(tree, tools="auto")
    assert fired(result) == {"promtool-test"}
    assert result.problems[0].file == rel


@pytest.mark.parametrize(("version", "emitted"), [("2.45", False), ("2.47", True)])
def test_generated_keys_fit_the_inventory_version(
    tmp_path: Path, run: Run, version: str, emitted: bool
) -> None:
    from flobs.generate import generate
    from tests.conftest import EXAMPLE_INVENTORY

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        EXAMPLE_INVENTORY.read_text().replace(
            "  local_prometheus:\n", f'  local_prometheus:\n    version: "{version}"\n', 1
        )
    )
    generate(inventory, tmp_path / "out")
    assert ("keep_dropped_targets" in (tmp_path / "out" / PROM).read_text()) is emitted
    result = run(tmp_path / "out", inventory=inventory)
    assert [p.render() for p in result.problems] == []


def test_file_that_is_not_utf8(tree: Path, run: Run) -> None:
    (tree / HOST / "exporters/process-exporter.yml").write_bytes(b"process_names: \xff\xfe\n")
    rehash(tree)
    result = run(tree)
    assert fired(result) == {"file-parses"}
    assert "utf-8" in result.problems[0].message.lower()


ODD_SHAPES = {
    PROM: "global: 1\nrule_files: [3, null]\nscrape_configs:\n  - 1\n  - x\n"
    "  - {job_name: 3, scrape_timeout: 5, static_configs: s,"
    " file_sd_configs: [a, {files: 7}], params: {'match[]': [1, '{']}}\n"
    "  - {job_name: y, static_configs: [null, {targets: 4}]}\n",
    RULES: "groups: [1, {rules: x}, {name: g, rules: [1, {expr: {a: 1}}, {record: r, expr: 3}]}]\n",
    "central/targets/eu1-a.json": '[1, {"targets": "x", "labels": []}, {"labels": {"host": 5}}]',
    "grafana/provisioning/datasources/flobs.yaml": "datasources: [x, {uid: 3, jsonData: [1]}]\n",
    "grafana/dashboards/odd.json": '{"panels": [1, {"gridPos": "x", "targets": "t", "panels": 3},'
    ' {"type": "row", "panels": [1, {"gridPos": {"x": "a"}}]}, {"datasource": 5, "targets":'
    ' [1, {"expr": 7}, {"datasource": {"uid": []}, "expr": "up"}]}], "templating": {"list": 1}}',
}


@pytest.mark.parametrize("rel", sorted(ODD_SHAPES))
def test_odd_shapes_are_findings_not_crashes(tree: Path, run: Run, rel: str) -> None:
    (tree / rel).write_text(ODD_SHAPES[rel])
    rehash(tree)
    result = run(tree)  # a crash would raise SystemFailure ("check … crashed")
    assert "schema" in fired(result)
    assert rel in {p.file for p in result.problems}
