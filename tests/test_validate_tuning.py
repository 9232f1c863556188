"""Tunable validation: --disable/--enable, inventory `validation:` (carried in the manifest),
ignores by glob, unmanaged paths in OUT, and `# flobs: disable=` comments in user files.
Disabled checks and suppressed findings show in every report format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flobs.generate import generate
from flobs.output import sha256
from tests.helpers import run_flobs
from tests.test_extensions import EXAMPLE


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    """A private copy of examples/extensions (inventory and its files)."""
    shutil.copytree(EXAMPLE.parent, tmp_path / "inv")
    return tmp_path / "inv" / "inventory.yaml"


def _with(inv: Path, text: str) -> Path:
    inv.write_text(inv.read_text(encoding="utf-8") + text, encoding="utf-8")
    return inv


def _gen(inv: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    generate(inv, out)
    return out


def _hand_edit(out: Path) -> None:
    path = out / "hosts/lab-01/prometheus.yml"
    path.write_text(path.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")


def test_disable_on_the_command_line(inv: Path, tmp_path: Path) -> None:
    out = _gen(inv, tmp_path)
    _hand_edit(out)
    plain = run_flobs("validate", out, "--tools", "off")
    assert plain.code == 1 and "manifest-hash" in plain.stdout
    tuned = run_flobs("validate", out, "--tools", "off", "--disable", "manifest-hash")
    assert tuned.code == 0, tuned.stdout
    assert tuned.stdout.splitlines()[-2:] == [
        # --tools off and no -i: 8 tool checks (amtool-config and amtool-routes among
        # them) and 2 inventory checks are skipped.
        "0 errors, 0 warnings (28 checks over 43 files, 10 skipped)",
        "disabled: manifest-hash (by --disable)",
    ]


def test_unknown_check_id_is_a_usage_error(inv: Path, tmp_path: Path) -> None:
    out = _gen(inv, tmp_path)
    result = run_flobs("validate", out, "--disable", "manifest-hsah")
    assert result.code == 2
    assert "no check has id 'manifest-hsah'" in result.stderr


def test_inventory_disable_travels_in_the_manifest_and_enable_wins(
    inv: Path, tmp_path: Path
) -> None:
    out = _gen(_with(inv, "validation:\n  disable: [manifest-hash]\n"), tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"] == {"disable": ["manifest-hash"], "ignore": [], "unmanaged": []}
    _hand_edit(out)
    tuned = run_flobs("validate", out, "--tools", "off", "--format", "json")
    report = json.loads(tuned.stdout)
    assert tuned.code == 0
    assert report["disabled_checks"] == [
        {"id": "manifest-hash", "by": "manifest.json (inventory validation.disable)"}
    ]
    back = run_flobs("validate", out, "--tools", "off", "--enable", "manifest-hash")
    assert back.code == 1 and "manifest-hash" in back.stdout


def test_disabled_checks_in_junit_and_github(inv: Path, tmp_path: Path) -> None:
    out = _gen(inv, tmp_path)
    junit = run_flobs("validate", out, "--tools", "off", "-f", "junit", "--disable", "dash-units")
    assert '<testcase classname="dash-units" name="(disabled)">' in junit.stdout
    assert '<skipped message="disabled by --disable" />' in junit.stdout
    gh = run_flobs("validate", out, "--tools", "off", "-f", "github", "--disable", "dash-units")
    assert gh.stdout == "::notice title=flobs validate::disabled: dash-units (by --disable)\n"


def test_ignore_by_glob_and_check(inv: Path, tmp_path: Path) -> None:
    out = _gen(
        _with(
            inv,
            "validation:\n  ignore:\n    - path: hosts/*/prometheus.yml\n"
            "      checks: [manifest-hash]\n",
        ),
        tmp_path,
    )
    _hand_edit(out)
    other = out / "hosts/lab-01/rules/flobs-local.yml"
    other.write_text(other.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    result = run_flobs("validate", out, "--tools", "off")
    assert result.code == 1
    assert "hosts/lab-01/rules/flobs-local.yml" in result.stdout
    assert "hosts/lab-01/prometheus.yml" not in result.stdout  # ignored
    assert result.stdout.splitlines()[-1] == (
        "suppressed: 1 finding (validation.ignore or # flobs: disable comments)"
    )


def test_unmanaged_paths_are_not_manifest_files(inv: Path, tmp_path: Path) -> None:
    out = _gen(_with(inv, "validation:\n  unmanaged: [notes/**/*.md]\n"), tmp_path)
    (out / "notes" / "ops").mkdir(parents=True)
    (out / "notes" / "ops" / "README.md").write_text("ours\n", encoding="utf-8")
    (out / "stray.txt").write_text("not ours\n", encoding="utf-8")
    result = run_flobs("validate", out, "--tools", "off", "--strict")
    assert result.code == 1
    assert "stray.txt" in result.stdout and "notes/ops/README.md" not in result.stdout


RATE_RULE = """
      - record: job:fc_rx:rate5m{comment}
        expr: rate(firecracker_net_rx_bytes_count[5m]){same_line}
"""


@pytest.mark.parametrize(
    ("comment", "code"),
    [
        (("", ""), 1),
        # One finding located at the line, one about the file as a whole (no line).
        (
            (
                "\n        # flobs: disable=firecracker-no-rate"
                "\n# flobs: disable-file=xref-closure",
                "",
            ),
            0,
        ),
        (("\n# flobs: disable-file=xref-closure", "  # flobs: disable=firecracker-no-rate"), 0),
        # A comment for another check, or on another line, suppresses nothing here.
        (("\n# flobs: disable-file=xref-closure", "  # flobs: disable=promql-parse"), 1),
    ],
)
def test_inline_disable_comment_in_a_user_rules_file(
    inv: Path, tmp_path: Path, comment: tuple[str, str], code: int
) -> None:
    rules = inv.parent / "rules" / "storage.yml"
    text = rules.read_text(encoding="utf-8").replace(
        "    rules:\n", "    rules:" + RATE_RULE.format(comment=comment[0], same_line=comment[1]), 1
    )
    rules.write_text(text, encoding="utf-8")
    out = _gen(inv, tmp_path)
    result = run_flobs("validate", out, "--tools", "off")
    assert result.code == code, result.stdout
    if code:
        assert "firecracker-no-rate" in result.stdout
        line = "7:15" if comment[0] else "6:15"  # the disable-file line comes first
        assert f"  {line}     error    firecracker-no-rate" in result.stdout
    else:
        assert result.stdout.splitlines()[-1] == (
            "suppressed: 2 findings (validation.ignore or # flobs: disable comments)"
        )


def test_inline_comment_in_a_flobs_file_does_nothing(inv: Path, tmp_path: Path) -> None:
    out = _gen(inv, tmp_path)
    path = out / "central/rules/flobs-alerts.yml"
    path.write_text("# flobs: disable-file=manifest-hash\n" + path.read_text(), encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"]["central/rules/flobs-alerts.yml"]["sha256"] != sha256(
        path.read_bytes()
    )
    result = run_flobs("validate", out, "--tools", "off")
    assert result.code == 1 and "manifest-hash" in result.stdout
