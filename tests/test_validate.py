"""`flobs validate` through the real entry point: exit code, stdout and stderr together."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from flobs.checks import all_checks
from flobs.validate import checks_markdown
from tests.checks.conftest import rehash
from tests.conftest import EXAMPLE_INVENTORY, require_major, require_tool
from tests.helpers import run_flobs

PROM = "hosts/fl-eu1-a-01/prometheus.yml"


@pytest.fixture
def out(example_out: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(example_out, copy)
    return copy


def _tools_path(tmp_path: Path, **scripts: str) -> dict[str, str]:
    """A PATH holding only these fake tools (their #!/bin/sh needs no PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        p = bin_dir / name
        p.write_text(f"#!/bin/sh\n{body}\n")
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    # FLOBS_TOOLS_PATH set: the checkout's .tools/bin is not searched either.
    return {"PATH": str(bin_dir), "FLOBS_TOOLS_PATH": ""}


def test_clean_example_exits_0(out: Path) -> None:
    r = run_flobs("validate", out, "-i", EXAMPLE_INVENTORY)
    assert r.code == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith("0 errors, 0 warnings (")
    assert all(line.startswith("note: ") for line in r.stderr.splitlines())


def test_findings_exit_1_grouped_per_file(out: Path) -> None:
    path = out / PROM
    path.write_text(path.read_text().replace("job_name: process", "job_name: node"))
    rehash(out)
    r = run_flobs("validate", out, "-i", EXAMPLE_INVENTORY, "--tools", "off")
    assert r.code == 1
    lines = r.stdout.splitlines()
    assert lines[0] == PROM
    assert "prom-job-unique" in lines[1] and "'node' is used twice" in lines[1]
    assert lines[-1].startswith("1 error, 0 warnings in 1 file")


def test_warnings_fail_only_with_strict(out: Path) -> None:
    (out / "central/extra.yml").write_text("a: 1\n")
    plain = run_flobs("validate", out, "--tools", "off")
    strict = run_flobs("validate", out, "--tools", "off", "--strict")
    assert (plain.code, strict.code) == (0, 1)
    assert "manifest-files" in plain.stdout and "0 errors, 1 warning" in plain.stdout


def test_json_report_to_a_file(out: Path, tmp_path: Path) -> None:
    target = tmp_path / "reports" / "flobs.json"
    (out / PROM).write_text((out / PROM).read_text() + "# hand edit\n")
    r = run_flobs("validate", out, "--format", "json", "--output", target, "--tools", "off")
    assert r.code == 1
    assert r.stdout == ""
    assert "validate failed: 1 errors" in r.stderr
    doc = json.loads(target.read_text())
    assert doc["ok"] is False
    assert [(p["file"], p["check"]) for p in doc["problems"]] == [(PROM, "manifest-hash")]


def test_junit_on_stdout(out: Path) -> None:
    r = run_flobs("validate", out, "--format", "junit", "--tools", "off")
    assert r.code == 0
    assert r.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "yaml"], "'yaml' is not one of 'text', 'json', 'junit', 'github'."),
        (["--tools", "maybe"], "'maybe' is not one of 'auto', 'require', 'off'."),
    ],
)
def test_bad_options_exit_2(out: Path, args: list[str], message: str) -> None:
    r = run_flobs("validate", out, *args)
    assert r.code == 2
    assert r.stdout == ""
    assert message in r.stderr


def test_out_that_is_not_a_directory_exits_2(tmp_path: Path) -> None:
    r = run_flobs("validate", tmp_path / "nothing")
    assert r.code == 2
    assert "is not a directory" in r.stderr


def test_missing_out_exits_2() -> None:
    r = run_flobs("validate")
    assert r.code == 2
    assert "missing OUT" in r.stderr


def test_bad_inventory_exits_2(out: Path, tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yaml"
    bad.write_text("apiVersion: flobs/v1\ncluster: [\n")
    r = run_flobs("validate", out, "-i", bad)
    assert r.code == 2
    assert str(bad) in r.stderr
    assert r.stdout == ""


def test_missing_tool_is_noted_under_auto(out: Path, tmp_path: Path) -> None:
    r = run_flobs("validate", out, "--tools", "auto", env=_tools_path(tmp_path))
    assert r.code == 0
    assert "note: promtool is not on PATH" in r.stderr


def test_missing_tool_fails_under_require(out: Path, tmp_path: Path) -> None:
    r = run_flobs("validate", out, "--tools", "require", env=_tools_path(tmp_path))
    assert r.code == 3
    assert (
        "promtool, promtail, alloy, otelcol, amtool not on PATH and --tools require is set"
        in r.stderr
    )
    assert r.stdout == ""


def test_crashing_tool_exits_3(out: Path, tmp_path: Path) -> None:
    env = _tools_path(tmp_path, promtool="echo 'runtime: out of memory' >&2\nkill -KILL $$")
    r = run_flobs("validate", out, "--tools", "auto", env=env)
    assert r.code == 3
    assert "exited -9" in r.stderr and "runtime: out of memory" in r.stderr


@pytest.mark.tools
def test_real_promtool_finding_exits_1(out: Path, tmp_path: Path) -> None:
    path = out / PROM
    path.write_text(path.read_text().replace('regex: "([a-z][a-zA-Z0-9_]*)"', 'regex: "([a-z"'))
    rehash(out)
    # promtail, alloy and otelcol cannot be installed here: stand-ins that accept all.
    env = _tools_path(tmp_path, promtail="exit 0", alloy="exit 0", otelcol="exit 0")
    # The example has hosts on Prometheus 3 and one on 2.42: both promtools are required.
    (tmp_path / "bin" / "promtool").symlink_to(require_major("promtool", 3))
    (tmp_path / "bin2").mkdir()
    (tmp_path / "bin2" / "promtool").symlink_to(require_major("promtool", 2))
    env["PATH"] += os.pathsep + str(tmp_path / "bin2")
    (tmp_path / "bin" / "amtool").symlink_to(require_tool("amtool"))
    r = run_flobs("validate", out, "-i", EXAMPLE_INVENTORY, "--tools", "require", env=env)
    assert r.code == 1
    assert r.stderr == ""
    assert "promtool-config" in r.stdout and "error parsing regexp" in r.stdout


def test_real_promtool_finding_github_annotation(out: Path) -> None:
    require_tool("promtool")
    path = out / PROM
    path.write_text(path.read_text().replace('regex: "([a-z][a-zA-Z0-9_]*)"', 'regex: "([a-z"'))
    rehash(out)
    r = run_flobs("validate", out, "--format", "github")
    assert r.code == 1
    (line,) = r.stdout.splitlines()
    assert line.startswith(f"::error file={out}/{PROM},title=flobs promtool-config::promtool: ")
    assert "error parsing regexp" in line


def test_list_checks_documents_every_check() -> None:
    r = run_flobs("validate", "--list-checks")
    assert r.code == 0
    for cls in all_checks():
        assert f"\n{cls.ID} [" in "\n" + r.stdout
    # Each entry carries the why and an example from its docstring.
    assert "Example: two jobs named" in r.stdout


def test_checks_markdown_has_a_row_per_check() -> None:
    table = checks_markdown()
    rows = table.splitlines()[2:]
    assert [row.split(" | ")[0].removeprefix("| ").strip("`") for row in rows] == [
        c.ID for c in all_checks()
    ]


def _workflow_commands() -> list[list[str]]:
    """Every `flobs …` command of examples/ci/github-actions.yml, as argv."""
    import shlex

    import yaml

    doc = yaml.safe_load((EXAMPLE_INVENTORY.parent / "ci" / "github-actions.yml").read_text())
    commands = []
    for step in doc["jobs"]["validate"]["steps"]:
        script = step.get("run", "").replace("\\\n", " ")
        commands += [
            shlex.split(line)[1:]
            for line in script.splitlines()
            if line.strip().startswith("flobs ")
        ]
    return commands


def test_ci_example_commands_run_clean(example_out: Path, tmp_path: Path) -> None:
    """The CI example's commands, as written, pass on the example fleet."""
    shutil.copy(EXAMPLE_INVENTORY, tmp_path / "inventory.yaml")
    shutil.copytree(example_out, tmp_path / "out")
    env = _tools_path(tmp_path, promtail="exit 0", alloy="exit 0", otelcol="exit 0")
    (tmp_path / "bin" / "promtool").symlink_to(require_tool("promtool"))
    commands = _workflow_commands()
    assert [c[0] for c in commands] == ["generate", "validate", "validate"]
    for argv in commands:
        r = run_flobs(*argv, cwd=tmp_path, env=env)
        assert r.code == 0, (argv, r.stdout, r.stderr)
    assert (tmp_path / "reports" / "flobs-validate.xml").read_text().startswith("<?xml")


def test_pre_commit_hooks_name_real_commands() -> None:
    import yaml

    hooks = yaml.safe_load((EXAMPLE_INVENTORY.parent.parent / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"]: h["entry"] for h in hooks} == {
        "flobs-generate-check": "flobs generate --check",
        "flobs-validate": "flobs validate",
    }
    for hook in hooks:
        r = run_flobs(*hook["entry"].split()[1:], "--help")
        assert r.code == 0, r.stderr


@pytest.mark.tools
def test_only_promtool_2_leaves_3x_files_unchecked_and_says_so(out: Path, tmp_path: Path) -> None:
    # An older promtool refuses newer keys: it must not stand in (false errors), only a
    # note says which files went unchecked. The example's 2.42 host is still checked.
    env = _tools_path(tmp_path, promtail="exit 0", alloy="exit 0", otelcol="exit 0")
    (tmp_path / "bin" / "promtool").symlink_to(require_major("promtool", 2))
    r = run_flobs("validate", out, "--tools", "auto", env=env)
    assert r.code == 0, r.stdout + r.stderr
    notes = [ln for ln in r.stderr.splitlines() if "no promtool 3.x" in ln]
    assert notes == [
        "note: promtool-config: no promtool 3.x found: 6 file(s) for Prometheus 3 were not "
        f"checked by promtool (found: 2.x at {tmp_path / 'bin' / 'promtool'}; an older "
        "promtool refuses newer keys)",
        "note: promtool-rules: no promtool 3.x found: 7 file(s) for Prometheus 3 were not "
        f"checked by promtool (found: 2.x at {tmp_path / 'bin' / 'promtool'}; an older "
        "promtool refuses newer keys)",
        "note: promtool-test: no promtool 3.x found: 1 file(s) for Prometheus 3 were not "
        f"checked by promtool (found: 2.x at {tmp_path / 'bin' / 'promtool'}; an older "
        "promtool refuses newer keys)",
    ]


@pytest.mark.tools
def test_only_promtool_3_checks_the_2x_files_too_and_says_so(out: Path, tmp_path: Path) -> None:
    env = _tools_path(tmp_path, promtail="exit 0", alloy="exit 0", otelcol="exit 0")
    promtool3 = require_major("promtool", 3)
    (tmp_path / "bin" / "promtool").symlink_to(promtool3)
    r = run_flobs("validate", out, "--tools", "auto", env=env)
    assert r.code == 0, r.stdout + r.stderr
    notes = [ln for ln in r.stderr.splitlines() if "no promtool 2.x" in ln]
    assert notes == [
        "note: promtool-config: no promtool 2.x found: 1 file(s) for Prometheus 2 were "
        f"checked with promtool 3.x ({tmp_path / 'bin' / 'promtool'})",
        "note: promtool-rules: no promtool 2.x found: 1 file(s) for Prometheus 2 were "
        f"checked with promtool 3.x ({tmp_path / 'bin' / 'promtool'})",
    ]
