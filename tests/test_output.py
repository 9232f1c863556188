"""The tree writer: atomic, minimal, and respectful of files it did not write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flobs.errors import SystemFailure
from flobs.output import MANIFEST, ChangeSet, build_manifest, plan
from flobs.output import write_tree as real_write_tree

# Both commit strategies must keep every promise: a whole-tree swap (many changes)
# and staged in-place renames (few changes).
MODE = {"small_change": 0}


@pytest.fixture(autouse=True, params=["swap", "in-place"])
def commit_mode(request: pytest.FixtureRequest) -> None:
    MODE["small_change"] = 0 if request.param == "swap" else 10**6


def write_tree(out: Path, tree: dict[str, bytes]) -> ChangeSet:
    return real_write_tree(out, tree, small_change=MODE["small_change"])


def _tree(**files: str) -> dict[str, bytes]:
    tree = {k.replace("__", "/"): v.encode() for k, v in files.items()}
    tree[MANIFEST] = build_manifest(tree, inventory_name="inv.yaml", inventory_sha256="0" * 64)
    return tree


def _snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_first_write_creates_everything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    changes = write_tree(out, _tree(a__x="1", b="2"))
    assert sorted(changes.added) == ["a/x", "b", MANIFEST]
    assert (out / "a" / "x").read_text() == "1"
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == {"a/x", "b"}


def test_unchanged_tree_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, _tree(a__x="1", b="2"))
    before = _snapshot(out)
    changes = write_tree(out, _tree(a__x="1", b="2"))
    assert changes.empty and changes.unchanged == 3
    assert _snapshot(out) == before


def test_one_change_rewrites_only_that_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, _tree(a__x="1", b="2"))
    before = _snapshot(out)
    changes = write_tree(out, _tree(a__x="1", b="changed"))
    assert changes.changed == ["b", MANIFEST]
    after = _snapshot(out)
    assert after["a/x"] == before["a/x"]  # same bytes, same inode, same mtime
    assert after["b"][0] == b"changed"


def test_files_no_longer_produced_are_removed_foreign_files_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, _tree(a__x="1", b="2"))
    (out / "NOTES.md").write_text("mine, not flobs'")
    changes = write_tree(out, _tree(a__x="1"))
    assert changes.removed == ["b"]
    assert not (out / "b").exists()
    assert (out / "NOTES.md").read_text() == "mine, not flobs'"


def test_failure_while_staging_leaves_out_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_tree(out, _tree(a__x="1", b="2"))
    before = _snapshot(out)
    real = Path.write_bytes
    calls = {"n": 0}

    def flaky(self: Path, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", flaky)
    with pytest.raises(SystemFailure, match="No space left"):
        write_tree(out, _tree(a__x="new", b="new", c="new"))
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging left behind


def test_interrupt_while_staging_leaves_out_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_tree(out, _tree(a__x="1"))
    before = _snapshot(out)

    def interrupted(self: Path, data: bytes) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_tree(out, _tree(a__x="2"))
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("bad", ["../escape", "/abs/path", "a/../../b"])
def test_paths_cannot_escape_out(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="escapes"):
        write_tree(tmp_path / "out", {bad: b"x"})


def test_plan_reports_a_hand_edit_as_changed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    tree = _tree(a="1")
    write_tree(out, tree)
    (out / "a").write_text("edited by hand")
    changes = plan(out, tree)
    assert changes.changed == ["a"]
    diff = "".join(changes.diff(out, tree))
    assert "-edited by hand" in diff and "+1" in diff


def test_out_directory_mode_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, _tree(a="1"))
    os.chmod(out, 0o750)
    write_tree(out, _tree(a="2"))
    assert out.stat().st_mode & 0o777 == 0o750


def test_removing_a_host_removes_its_empty_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, _tree(hosts__a__x="1", hosts__b__x="2"))
    write_tree(out, _tree(hosts__a__x="1"))
    assert sorted(p.name for p in (out / "hosts").iterdir()) == ["a"]


def test_leftovers_of_a_killed_run_are_removed_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, _tree(a="1"))
    dead = tmp_path / ".out.flobs-staging-999999999"  # no such process
    dead.mkdir()
    (dead / "half-written").write_text("x")
    live = tmp_path / f".out.flobs-old-{os.getppid()}"  # a process that exists
    live.mkdir()
    write_tree(out, _tree(a="2"))
    assert not dead.exists()
    assert live.exists()
