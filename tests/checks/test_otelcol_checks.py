"""Checks for otelcol.yaml: each fires on exactly its own corruption of a generated tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flobs.model import Fleet
from flobs.problems import Severity
from tests.artifacts.test_promtail import example_doc, fleet_of
from tests.checks.test_logs_checks import (
    edit_yaml,
    example_tree,
    full_featured_doc,
    only,
    optional_tool,
    run,
    run_one,
    write_tree,
)

__all__ = ["example_tree"]  # the fixture, re-used from the log checks

OTEL = "hosts/fl-eu1-a-01/otelcol.yaml"


def traces(d: dict[str, Any]) -> dict[str, Any]:
    pipeline: dict[str, Any] = d["service"]["pipelines"]["traces"]
    return pipeline


def test_schema_check_fires_on_an_inline_header_secret(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    edit_yaml(
        out / OTEL,
        lambda d: d["exporters"]["otlp"].update({"headers": {"Authorization": "Bearer s3cr3t"}}),
    )
    (problem,) = only(run(out, fleet), "otelcol-schema")
    assert problem.key_path == "$.exporters.otlp.headers.Authorization"
    assert problem.line is not None


def test_reference_check_fires_on_an_undefined_processor(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    edit_yaml(out / OTEL, lambda d: traces(d)["processors"].insert(2, "attributes/extra"))
    (problem,) = only(run(out, fleet), "otelcol-references")
    assert problem.message == (
        "pipeline traces uses processor `attributes/extra`, which is not defined under processors"
    )
    assert problem.key_path == "$.service.pipelines.traces.processors[2]"


def test_reference_check_fires_on_a_missing_auth_extension(tmp_path: Path) -> None:
    doc = example_doc()
    doc["central"]["traces"]["bearer_token_file"] = "/etc/tok"
    fleet = fleet_of(doc)
    out = write_tree(tmp_path / "out", fleet)
    edit_yaml(out / OTEL, lambda d: d["service"]["extensions"].remove("bearertokenauth/central"))
    problems = run(out, fleet)
    # Not enabled, so also unused; both findings name the same mistake.
    assert {p.check_id for p in problems} == {"otelcol-references", "otelcol-unused"}
    refs = [p for p in problems if p.check_id == "otelcol-references"]
    assert refs[0].message == (
        "exporter `otlp` needs extension `bearertokenauth/central`, "
        "which is not defined and enabled"
    )


def test_unused_check_fires_on_a_processor_no_pipeline_uses(
    example_tree: tuple[Path, Fleet],
) -> None:
    out, fleet = example_tree
    edit_yaml(out / OTEL, lambda d: traces(d)["processors"].remove("resource"))
    (problem,) = only(run(out, fleet), "otelcol-unused")
    assert problem.message == "processor `resource` is defined but no pipeline uses it"
    assert problem.key_path == "$.processors.resource"


def test_order_check_fires_when_batch_runs_before_the_limiter(
    example_tree: tuple[Path, Fleet],
) -> None:
    out, fleet = example_tree
    edit_yaml(
        out / OTEL,
        lambda d: traces(d).update({"processors": ["batch", "resource", "memory_limiter"]}),
    )
    problems = only(run(out, fleet), "otelcol-processor-order")
    assert sorted(p.message for p in problems) == [
        "pipeline traces: the first processor is batch, not memory_limiter",
        "pipeline traces: the last processor is memory_limiter, not batch",
    ]


def test_order_check_covers_the_logs_pipeline(tmp_path: Path) -> None:
    fleet = fleet_of(full_featured_doc())
    out = write_tree(tmp_path / "out", fleet)
    edit_yaml(
        out / OTEL,
        lambda d: d["service"]["pipelines"]["logs"].update(
            {"processors": ["memory_limiter", "batch", "resource"]}
        ),
    )
    (problem,) = only(run(out, fleet), "otelcol-processor-order")
    assert problem.message == "pipeline logs: the last processor is resource, not batch"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            lambda d: d["receivers"]["otlp"]["protocols"]["grpc"].update(
                {"endpoint": "0.0.0.0:4317"}
            ),
            "$.receivers.otlp.protocols.grpc.endpoint",
        ),
        (
            lambda d: d["extensions"]["health_check"].update({"endpoint": "10.0.0.1:13133"}),
            "$.extensions.health_check.endpoint",
        ),
        (
            lambda d: d["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"][
                "prometheus"
            ].update({"host": "::"}),
            "$.service.telemetry.metrics.readers[0].pull.exporter.prometheus.host",
        ),
    ],
)
def test_loopback_check(example_tree: tuple[Path, Fleet], change: Any, where: str) -> None:
    out, fleet = example_tree
    edit_yaml(out / OTEL, change)
    (problem,) = only(run(out, fleet), "otelcol-loopback")
    assert problem.key_path == where
    assert problem.severity is Severity.ERROR
    (warning,) = only(run(out, None), "otelcol-loopback")
    assert warning.severity is Severity.WARNING
    allowed = example_doc()
    allowed["hosts"][0]["vars"] = {"otelcol": {"allow_public": True}}
    assert run(out, fleet_of(allowed)) == []


def test_real_otelcol_validates_the_example(example_tree: tuple[Path, Fleet]) -> None:
    optional_tool("otelcol-contrib", "otelcol")
    out, fleet = example_tree
    assert run_one(out, fleet, "otelcol-tool") == []
