"""Every schema reporter words errors the same way and never echoes the failing value.

The `schema` check always did (a pasted-in secret must not reach CI logs or GitHub
annotations); `logs-schema` and `otelcol-schema` used jsonschema's own message, which
quotes the value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flobs.model import Fleet
from flobs.report import FORMATS, render
from flobs.validate import validate
from tests.checks.test_logs_checks import edit_yaml, example_tree, only, run

__all__ = ["example_tree"]

SECRET = "Bearer s3cr3t-Inline-Header-Token"
PROMTAIL = "hosts/fl-eu1-a-02/promtail.yml"
OTEL = "hosts/fl-eu1-a-01/otelcol.yaml"


def test_otelcol_schema_does_not_echo_an_inline_header(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    edit_yaml(
        out / OTEL,
        lambda d: d["exporters"]["otlp_grpc/traces"].update({"headers": {"X-Key": SECRET}}),
    )
    (problem,) = only(run(out, fleet), "otelcol-schema")
    assert (problem.file, problem.key_path) == (
        OTEL,
        '$.exporters["otlp_grpc/traces"].headers.X-Key',
    )
    assert problem.message == r"must match the pattern ^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$"
    assert SECRET not in problem.render()


def test_logs_schema_does_not_echo_a_wrong_typed_value(example_tree: tuple[Path, Fleet]) -> None:
    out, fleet = example_tree
    edit_yaml(out / PROMTAIL, lambda d: d["server"].update({"http_listen_port": SECRET}))
    (problem,) = only(run(out, fleet), "logs-schema")
    assert (problem.file, problem.key_path) == (PROMTAIL, "$.server.http_listen_port")
    assert problem.message == "must be of type integer"
    assert SECRET not in problem.render()


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_report_format_carries_the_value(example_tree: tuple[Path, Fleet], fmt: str) -> None:
    out, _fleet = example_tree
    edit_yaml(
        out / OTEL,
        lambda d: d["exporters"]["otlp_grpc/traces"].update({"headers": {"X-Key": SECRET}}),
    )
    edit_yaml(out / PROMTAIL, lambda d: d["server"].update({"http_listen_port": SECRET}))
    result = validate(out, inventory=None, tools="off")
    assert {p.check_id for p in result.problems} >= {"otelcol-schema", "logs-schema"}
    text = render(result, fmt, base=str(out))
    assert "s3cr3t-Inline" not in text
