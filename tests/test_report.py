"""Report formats: json against its schema, junit as XML, github annotations, text."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flobs import resources
from flobs.problems import Problem, Severity
from flobs.report import render, render_github, render_text
from flobs.validate import CheckRun, ValidateResult

HOSTILE = 'bad "quote" <tag> & 100%\nnext line: a, b\x07'
PROBLEMS = (
    Problem(
        "hosts/a/prometheus.yml",
        12,
        5,
        "prom-job-unique",
        Severity.ERROR,
        "job_name 'node' is used twice",
        "Prometheus refuses duplicate job names",
        "$.scrape_configs[3].job_name",
    ),
    Problem("hosts/a/prometheus.yml", None, None, "manifest-hash", Severity.ERROR, HOSTILE),
    Problem(
        "grafana/dashboards/x,y:z.json",
        3,
        None,
        "dash-units",
        Severity.WARNING,
        "panel 'p' sets no unit",
    ),
    Problem(None, None, None, "xref-hosts", Severity.ERROR, "host 'h9' is in no target file"),
)
CHECKS = (
    CheckRun(
        "prom-job-unique",
        "unique scrape job names",
        ("hosts/a/prometheus.yml", "hosts/b/prometheus.yml"),
    ),
    CheckRun("manifest-hash", "no hand-edited files", ("hosts/a/prometheus.yml",)),
    CheckRun("dash-units", "numeric panels set a unit", ("grafana/dashboards/x,y:z.json",)),
    CheckRun("xref-hosts", "inventory hosts ↔ central targets", ()),
    CheckRun("schema", "files match their JSON Schema", ()),
)


def _result(strict: bool = False, problems: tuple[Problem, ...] = PROBLEMS) -> ValidateResult:
    return ValidateResult(
        Path("out/example"), problems, CHECKS, ("promtail is not on PATH",), 42, strict
    )


def test_json_matches_its_schema_and_round_trips() -> None:
    doc = json.loads(render(_result(), "json"))
    jsonschema.validate(doc, resources.schema("validate-report.schema.json"))
    assert doc["ok"] is False
    assert doc["summary"] == {"errors": 3, "warnings": 1, "infos": 0, "files": 42, "checks": 5}
    assert doc["problems"][1]["message"] == HOSTILE
    assert doc["problems"][0]["key_path"] == "$.scrape_configs[3].job_name"
    assert doc["notes"] == ["promtail is not on PATH"]


def test_json_ok_follows_strict() -> None:
    warning_only = (PROBLEMS[2],)
    assert json.loads(render(_result(False, warning_only), "json"))["ok"] is True
    assert json.loads(render(_result(True, warning_only), "json"))["ok"] is False


def _cases(xml: str) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(xml)  # noqa: S314 - our own output, parsed to check it
    return {(c.get("classname", ""), c.get("name", "")): c for c in root.iter("testcase")}


def test_junit_one_testcase_per_check_per_file() -> None:
    xml = render(_result(), "junit")
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    cases = _cases(xml)
    assert set(cases) == {
        ("prom-job-unique", "hosts/a/prometheus.yml"),
        ("prom-job-unique", "hosts/b/prometheus.yml"),
        ("manifest-hash", "hosts/a/prometheus.yml"),
        ("dash-units", "grafana/dashboards/x,y:z.json"),
        ("xref-hosts", "(fleet)"),
        ("schema", "(all files)"),
    }
    assert root.get("tests") == "6"
    assert root.get("failures") == "3"
    assert cases[("prom-job-unique", "hosts/b/prometheus.yml")].find("failure") is None
    failure = cases[("manifest-hash", "hosts/a/prometheus.yml")].find("failure")
    assert failure is not None
    # The hostile text survives, minus the BEL that XML 1.0 cannot carry.
    assert failure.get("message") == HOSTILE.replace("\x07", "\\x07")
    # A warning is shown but only fails with --strict.
    warn = cases[("dash-units", "grafana/dashboards/x,y:z.json")]
    assert warn.find("failure") is None
    assert "sets no unit" in (warn.findtext("system-out") or "")
    strict = _cases(render(_result(strict=True), "junit"))
    assert strict[("dash-units", "grafana/dashboards/x,y:z.json")].find("failure") is not None


def test_github_annotations_escape_properties_and_data() -> None:
    lines = render_github(PROBLEMS, base="out/example").splitlines()
    assert len(lines) == len(PROBLEMS)
    assert lines[0] == (
        "::error file=out/example/hosts/a/prometheus.yml,line=12,col=5,"
        "title=flobs prom-job-unique::$.scrape_configs[3].job_name: job_name 'node' is used "
        "twice%0Ahint: Prometheus refuses duplicate job names"
    )
    assert lines[1] == (
        "::error file=out/example/hosts/a/prometheus.yml,title=flobs manifest-hash::"
        'bad "quote" <tag> & 100%25%0Anext line: a, b\x07'
    )
    assert lines[2].startswith(
        "::warning file=out/example/grafana/dashboards/x%2Cy%3Az.json,line=3,title="
    )
    assert lines[3] == "::error title=flobs xref-hosts::host 'h9' is in no target file"


def test_text_is_grouped_per_file_and_shows_control_characters() -> None:
    text = render_text(PROBLEMS, _result())
    lines = text.splitlines()
    assert lines[0] == "hosts/a/prometheus.yml"
    assert lines[1].split()[:3] == ["12:5", "error", "prom-job-unique"]
    assert "hint: Prometheus refuses duplicate job names" in lines[2]
    assert "\x07" not in text
    assert 'bad "quote" <tag> & 100%\\x0anext line: a, b\\x07' in lines[3]
    assert "(fleet)" in lines
    assert lines[-1] == "3 errors, 1 warning in 3 files (5 checks over 42 files)"


def test_text_clean() -> None:
    clean = render_text((), _result(problems=()))
    assert clean == "0 errors, 0 warnings (5 checks over 42 files)\n"


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        render(_result(), "sarif")


def _gh_decode(text: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


@settings(max_examples=200, deadline=None)
@given(file=st.text(min_size=1), message=st.text())
def test_github_annotation_is_one_line_that_decodes_back(file: str, message: str) -> None:
    problem = Problem(file, 3, None, "schema", Severity.ERROR, message)
    out = render_github([problem])
    assert out.count("\n") == 1 and out.endswith("\n") and "\r" not in out
    head, _, data = out[:-1].partition("::")[2].partition("::")
    props = dict(p.split("=", 1) for p in head.removeprefix("error ").split(","))
    assert _gh_decode(props["file"]) == file
    assert _gh_decode(data) == message


@settings(max_examples=200, deadline=None)
@given(message=st.text())
def test_junit_is_well_formed_for_any_message(message: str) -> None:
    problem = Problem("a.yml", None, None, "schema", Severity.ERROR, message)
    result = ValidateResult(Path("out"), (problem,), (CheckRun("schema", "t", ("a.yml",)),), (), 1)
    root = ET.fromstring(render(result, "junit"))  # noqa: S314 - our own output
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == _XML_SAFE(message)


def _XML_SAFE(text: str) -> str:
    import re

    bad = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
    return bad.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
