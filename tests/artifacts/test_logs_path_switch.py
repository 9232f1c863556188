"""`otelcol.logs_pipeline: true` replaces the log shipper instead of doubling every line."""

from __future__ import annotations

from pathlib import Path

from flobs import yamlio
from flobs.generate import generate
from flobs.validate import validate
from tests.conftest import EXAMPLE_INVENTORY


def test_collector_logs_path_replaces_promtail_and_alloy(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    # fl-eu1-b-03 runs Alloy in the example; switch it and one Promtail host to OTel logs.
    inv.write_text(
        EXAMPLE_INVENTORY.read_text()
        .replace(
            "otelcol: {sampling_percentage: 25}",
            "otelcol: {sampling_percentage: 25, logs_pipeline: true}",
        )
        .replace(
            "    labels: {rack: r11}\n  - name: fl-eu1-b-02",
            "    labels: {rack: r11}\n    vars: {otelcol: {logs_pipeline: true}}\n"
            "  - name: fl-eu1-b-02",
        )
    )
    out = tmp_path / "out"
    generate(inv, out)
    for host, agent_file in (("fl-eu1-b-03", "config.alloy"), ("fl-eu1-b-01", "promtail.yml")):
        base = out / "hosts" / host
        assert not (base / agent_file).exists()
        jobs = [
            j["job_name"]
            for j in yamlio.load((base / "prometheus.yml").read_text())["scrape_configs"]
        ]
        assert "promtail" not in jobs and "alloy" not in jobs
        otel = yamlio.load((base / "otelcol.yaml").read_text())
        assert "logs" in otel["service"]["pipelines"]
    # Hosts without the switch keep their shipper.
    assert (out / "hosts" / "fl-eu1-a-01" / "promtail.yml").exists()
    result = validate(out, inventory=inv, tools="off", strict=True)
    assert [p.render() for p in result.problems] == []
