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
    run,
    run_one,
    write_tree,
)
from tests.conftest import require_tool

__all__ = ["example_tree"]  # the fixture, re-used from the log checks

OTEL = "hosts/fl-eu1-a-01/otelcol.yaml"


def traces(d: dict[str, Any]) -> dict[str, Any]:
    pipeline: dict[str, Any] = d["service"]["pipelines"]["traces"]
    return pipeline


def test_schema_check_fires_on_an_inline_header_secret(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    edit_yaml(
        out / OTEL,
        lambda d: d["exporters"]["otlp_grpc/traces"].update(
            {"headers": {"Authorization": "Bearer s3cr3t"}}
        ),
    )
    (problem,) = only(run(out, fleet), "otelcol-schema")
    assert problem.key_path == '$.exporters["otlp_grpc/traces"].headers.Authorization'
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
    edit_yaml(out / OTEL, lambda d: d["service"]["extensions"].remove("bearertokenauth/traces"))
    problems = run(out, fleet)
    # Not enabled, so also unused; both findings name the same mistake.
    assert {p.check_id for p in problems} == {"otelcol-references", "otelcol-unused"}
    refs = [p for p in problems if p.check_id == "otelcol-references"]
    assert refs[0].message == (
        "exporter `otlp_grpc/traces` needs extension `bearertokenauth/traces`, "
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
            {"processors": ["memory_limiter", "batch", "resource", "resource/logs"]}
        ),
    )
    (problem,) = only(run(out, fleet), "otelcol-processor-order")
    assert problem.message == "pipeline logs: the last processor is resource, not batch"


def test_order_check_accepts_queue_batching_from_v0_160(tmp_path: Path) -> None:
    doc = full_featured_doc()
    doc["defaults"].setdefault("otelcol", {})["version"] = "0.160.0"
    fleet = fleet_of(doc)
    out = write_tree(tmp_path / "out", fleet)
    assert run(out, fleet) == []
    # …but only while every exporter of the pipeline batches in its queue.
    edit_yaml(
        out / OTEL,
        lambda d: d["exporters"]["otlp_grpc/traces"]["sending_queue"].pop("batch"),
    )
    (problem,) = only(run(out, fleet), "otelcol-processor-order")
    assert problem.message == "pipeline traces: the last processor is resource, not batch"


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
    require_tool("otelcol")  # `make tools` builds it (tools/otelcol)
    out, fleet = example_tree
    assert run_one(out, fleet, "otelcol-tool") == []


def _fake_otelcol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_code: int) -> Path:
    """An otelcol that records the file it was given and exits with ``exit_code``."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "otelcol"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/bin/sh\necho "$3" >> {calls}\necho "invalid: $3"\nexit {exit_code}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("FLOBS_TOOLS_PATH", str(fake.parent))
    return calls


def _same_shape_tree(out: Path) -> list[str]:
    """Every host's otelcol.yaml made from the first one, only its host name changed."""
    paths = sorted(p.relative_to(out).as_posix() for p in out.glob("hosts/*/otelcol.yaml"))
    first = paths[0].split("/")[1]
    template = (out / paths[0]).read_text()
    for rel in paths[1:]:
        (out / rel).write_text(template.replace(first, rel.split("/")[1]))
    return paths


def test_otelcol_runs_once_per_shape_and_reports_every_file(
    example_tree: tuple[Path, Fleet], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = example_tree
    paths = _same_shape_tree(out)
    calls = _fake_otelcol(tmp_path, monkeypatch, exit_code=0)
    assert run_one(out, None, "otelcol-tool") == []
    assert calls.read_text().splitlines() == [str(out / paths[0])]

    calls = _fake_otelcol(tmp_path / "failing", monkeypatch, exit_code=1)
    problems = run_one(out, None, "otelcol-tool")
    assert calls.read_text().splitlines() == [str(out / paths[0])]
    assert [p.file for p in problems] == paths
    for p in problems:  # each finding names its own file, not the representative's
        assert p.message.endswith(f"exited 1: invalid: {out / p.file}")


def test_order_check_reads_only_exporter_names(example_tree: tuple[Path, Fleet]) -> None:
    # A list where an exporter name belongs crashed the check (unhashable type: 'list').
    out, fleet = example_tree
    edit_yaml(
        out / OTEL,
        lambda d: d["service"]["pipelines"]["metrics/spanmetrics"].update({"exporters": [[]]}),
    )
    order = [p.message for p in run(out, fleet) if p.check_id == "otelcol-processor-order"]
    # No exporter name left, so nothing says the pipeline only feeds a pull exporter.
    assert order == [
        "pipeline metrics/spanmetrics: the last processor is memory_limiter, not batch"
    ]
