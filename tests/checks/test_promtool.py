"""flobs.tools: promtool batches, failure mapping, and crashes (exit 3, not findings)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from flobs import tools
from flobs.errors import ToolFailure
from tests.checks.conftest import read_yaml, write_yaml
from tests.conftest import require_tool

HOSTS = [f"hosts/fl-eu1-{z}-0{n}/prometheus.yml" for z in "ab" for n in (1, 2, 3)]


@pytest.mark.tools
def test_batches_map_each_failure_to_its_file(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    promtool = require_tool("promtool")
    broken = {HOSTS[1], HOSTS[4]}
    for rel in broken:
        doc = read_yaml(tree, rel)
        doc["global"]["scrape_timeout"] = "2m"
        write_yaml(tree, rel, doc)
    # Two files per call: three promtool processes, run in parallel.
    monkeypatch.setattr(tools, "BATCH_SIZE", 2)
    calls: list[int] = []

    def counting(command: list[str], cwd: Path) -> tuple[int, str]:
        calls.append(len(command))
        return tools._run(command, cwd)

    found = tools.run_promtool(
        promtool, ("check", "config", "--syntax-only"), HOSTS, tree, runner=counting
    )
    assert len(calls) == 3
    assert {f.path for f in found} == broken
    assert all("scrape timeout greater than scrape interval" in f.message for f in found)


def test_parse_promtool_output_attributes_blocks() -> None:
    output = (
        "Checking a.yml\n  SUCCESS: 3 rules found\n\n"
        'Checking b.yml\n  FAILED:\nb.yml: 9:15: group "g", rule 1: could not parse\n\n'
    )
    blocks = tools.parse_promtool_output(output, ["a.yml", "b.yml"], "check")
    assert blocks["a.yml"] is None
    assert blocks["b.yml"] is not None
    (finding,) = tools._findings_from_block("b.yml", blocks["b.yml"])
    assert (finding.path, finding.line) == ("b.yml", 9)
    assert finding.message == 'group "g", rule 1: could not parse'


def test_lint_complaints_are_marked() -> None:
    (finding,) = tools._findings_from_block("r.yml", "FAILED:\nlint error 1 duplicate rule(s)")
    assert finding.lint


def test_output_missing_a_file_is_a_crash(tmp_path: Path) -> None:
    def stops_early(command: list[str], cwd: Path) -> tuple[int, str]:
        return 1, "Checking a.yml\n SUCCESS\n"

    with pytest.raises(ToolFailure, match=r"no result for b\.yml"):
        tools.run_promtool(
            "promtool", ("check", "rules"), ["a.yml", "b.yml"], tmp_path, runner=stops_early
        )


def _fake_tool(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(("body", "code"), [("exit 2", 2), ("kill -SEGV $$", -11)])
def test_unexpected_exit_is_a_tool_failure(tmp_path: Path, body: str, code: int) -> None:
    fake = _fake_tool(tmp_path, "promtool", f"echo boom\n{body}")
    with pytest.raises(ToolFailure) as caught:
        tools.run_promtool(str(fake), ("check", "rules"), ["a.yml"], tmp_path)
    assert caught.value.returncode == code
    assert "boom" in caught.value.output


def test_tool_that_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(ToolFailure) as caught:
        tools.run_promtool(str(tmp_path / "nope"), ("check", "rules"), ["a.yml"], tmp_path)
    assert caught.value.returncode is None


def test_find_tool_prefers_the_first_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path, "otelcol-contrib", "exit 0")
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    found = tools.find_tool("otelcol")
    assert found is not None
    assert Path(found).name in ("otelcol", "otelcol-contrib")


@pytest.mark.tools
def test_identical_bodies_run_once_and_report_every_file(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("promtool")
    from flobs.checks import CheckContext
    from flobs.checks.tools import PromtoolRules

    rules = [h.replace("prometheus.yml", "rules/flobs-local.yml") for h in HOSTS]
    for rel in rules[:4]:  # same corruption in four hosts' files (headers differ)
        doc = read_yaml(tree, rel)
        doc["groups"][1]["rules"][0]["expr"] = "sum("  # both majors refuse it
        header = (tree / rel).read_text().split("groups:")[0]
        (tree / rel).write_text(header + write_yaml_text(doc))
    seen: list[int] = []
    real = tools.run_promtool

    def spy(binary, args, files, cwd, **kw):  # type: ignore[no-untyped-def]
        seen.append(len(files))
        return real(binary, args, files, cwd, **kw)

    monkeypatch.setattr(tools, "run_promtool", spy)
    ctx = CheckContext(out=tree, fleet=None, tools="auto")
    problems = list(PromtoolRules().check(ctx))
    assert sorted(p.file for p in problems) == sorted(rules[:4])
    # Six host files and the centre's rules, but only the distinct bodies went to promtool.
    assert seen and seen[0] < len(rules)


def write_yaml_text(doc: object) -> str:
    from flobs import yamlio

    return yamlio.dump(doc)
