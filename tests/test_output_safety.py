"""The tree writer under attack: hostile manifests, symlinks, kills and concurrent runs.

The manifest is input like any other (a pull request can edit it); nothing it says
may make flobs write or remove a file outside OUT. A commit killed at any step
leaves OUT equal to the old or the new tree once the next run has looked at it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flobs.errors import InputError, SystemFailure, UsageError
from flobs.output import MANIFEST, OutRoot, build_manifest, out_lock, plan, recover, write_tree
from tests.conftest import REPO

MODES = {"swap": 0, "in-place": 10**6}


def _tree(**files: str) -> dict[str, bytes]:
    tree = {k.replace("__", "/"): v.encode() for k, v in files.items()}
    tree[MANIFEST] = build_manifest(tree, inventory_name="inv.yaml", inventory_sha256="0" * 64)
    return tree


OLD = _tree(a="1", b="2", d__x="3", e__y="gone soon")
# a changed, b and d/x kept, c and f/z added, e/y removed (and with it e/).
NEW = _tree(a="one", b="2", c="new", d__x="3", f__z="deep")


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _stat_snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _set_manifest_files(out: Path, files: object) -> None:
    doc = json.loads((out / MANIFEST).read_text())
    doc["files"] = files
    (out / MANIFEST).write_text(json.dumps(doc, indent=2))


# ---- 1. the manifest is untrusted input -------------------------------------------------


HOSTILE_ENTRIES = [
    ("../victim", "has an empty, `.` or `..` component"),
    ("a/../../victim", "has an empty, `.` or `..` component"),
    ("ABSOLUTE", "is an absolute path"),
    ("", "is empty"),
    ("a\x00b", "contains a control character (NUL, newline, ...)"),
    ("x\ny", "contains a control character (NUL, newline, ...)"),
    ("a//b", "has an empty, `.` or `..` component"),
    ("./b", "has an empty, `.` or `..` component"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("entry", "reason"), HOSTILE_ENTRIES)
def test_hostile_manifest_entry_is_located_input_error_and_nothing_changes(
    tmp_path: Path, mode: str, entry: str, reason: str
) -> None:
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.write_text("not flobs'")
    write_tree(out, OLD)
    entry = str(victim) if entry == "ABSOLUTE" else entry
    listed = json.loads((out / MANIFEST).read_text())["files"]
    _set_manifest_files(out, {**listed, entry: {"sha256": "0" * 64, "size": 1}})
    before = _stat_snapshot(tmp_path)
    with pytest.raises(InputError) as caught:
        write_tree(out, NEW, small_change=MODES[mode])
    (problem,) = caught.value.problems
    line = (
        (out / MANIFEST).read_text().splitlines().index(f"    {json.dumps(entry)}: {{")
    )  # json.dumps(indent=2) put the entry on its own line
    assert (problem.file, problem.line, problem.col) == (str(out / MANIFEST), line + 1, 5)
    assert problem.key_path == f"$.files[{json.dumps(entry)}]"
    assert problem.message == f"{reason}: flobs writes and removes files only inside OUT"
    assert caught.value.message == f"{out}/manifest.json is not a manifest flobs can trust"
    assert _stat_snapshot(tmp_path) == before  # the victim, OUT and everything else


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("[]", (1, 1), "must be a JSON object with a `files` object"),
        ('{"files": []}', (1, 1), "must be a JSON object with a `files` object"),
        (
            '{"files": {"a": 5}}',
            (1, 12),
            "must map to an object with sha256 and size: flobs "
            "writes and removes files only inside OUT",
        ),
        ('{"files": {\n  "a": {}\n', (3, 1), "is not JSON: Expecting ',' delimiter"),
        (b"\xff{}", (None, None), "is not UTF-8 (byte 0)"),
    ],
)
def test_manifest_of_the_wrong_shape_is_an_input_error_not_a_crash(
    tmp_path: Path, text: str | bytes, where: tuple[int | None, int | None], message: str
) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    data = text if isinstance(text, bytes) else text.encode()
    (out / MANIFEST).write_bytes(data)
    before = _stat_snapshot(tmp_path)
    with pytest.raises(InputError) as caught:
        write_tree(out, NEW)
    (problem,) = caught.value.problems
    assert (problem.line, problem.col, problem.message) == (*where, message)
    assert _stat_snapshot(tmp_path) == before


def test_manifest_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text((out / MANIFEST).read_text())
    (out / MANIFEST).unlink()
    (out / MANIFEST).symlink_to(elsewhere)
    with pytest.raises(InputError) as caught:
        write_tree(out, NEW)
    assert caught.value.problems[0].message == (
        "is not a regular file (a symlink, directory or device)"
    )
    assert elsewhere.read_text().startswith("{")


@pytest.mark.parametrize("mode", MODES)
def test_manifest_path_through_a_symlinked_directory_is_refused(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("keep me")
    write_tree(out, OLD)
    (out / "link").symlink_to(outside, target_is_directory=True)
    listed = json.loads((out / MANIFEST).read_text())["files"]
    _set_manifest_files(out, {**listed, "link/secret": {"sha256": "0" * 64, "size": 7}})
    before = _stat_snapshot(tmp_path)
    with pytest.raises(
        UsageError,
        match=r"out/link is a symlink: flobs will not write or "
        r"remove link/secret through it",
    ):
        write_tree(out, NEW, small_change=MODES[mode])
    assert _stat_snapshot(tmp_path) == before


@pytest.mark.parametrize("mode", MODES)
def test_generated_path_through_a_symlinked_directory_is_refused(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_text("not flobs'")
    write_tree(out, OLD)
    (out / "d" / "x").unlink()
    (out / "d").rmdir()
    (out / "d").symlink_to(outside, target_is_directory=True)  # d/x is generated
    before = _stat_snapshot(tmp_path)
    with pytest.raises(UsageError, match="out/d is a symlink: flobs will not write or remove d/x"):
        write_tree(out, NEW, small_change=MODES[mode])
    assert _stat_snapshot(tmp_path) == before


def test_generated_file_that_is_a_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    out = tmp_path / "out"
    target = tmp_path / "target"
    target.write_text("not flobs'")
    write_tree(out, OLD)
    (out / "a").unlink()
    (out / "a").symlink_to(target)
    changes = plan(out, NEW)
    assert "a" in changes.changed
    assert "a is not a regular file; generate replaces it\n" in list(changes.diff(out, NEW))
    write_tree(out, NEW)
    assert not (out / "a").is_symlink() and (out / "a").read_text() == "one"
    assert target.read_text() == "not flobs'"


# ---- 3. crash-safe commits ----------------------------------------------------------------

IN_PLACE_POINTS = [
    "staged",
    "journal",
    *(f"apply-{n}" for n in range(1, 6)),  # 1 removal + 4 writes (a, c, f/z, manifest)
    "applied",
    "committed",
]

_WRITER = """
import sys
from pathlib import Path
from tests.test_output_safety import NEW
from flobs.output import write_tree
write_tree(Path(sys.argv[1]), NEW, small_change=int(sys.argv[2]))
"""


def _kill_at(out: Path, point: str, small_change: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WRITER, str(out), str(small_change)],
        env={**os.environ, "FLOBS_TEST_FAULT": f"{point}:kill"},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _consistent(out: Path) -> str:
    """'old' or 'new' when OUT is exactly that tree with its manifest; else fail."""
    files = _files(out)
    for name, tree in (("old", OLD), ("new", NEW)):
        if files == tree:
            return name
    raise AssertionError(f"OUT is neither tree: {sorted(files)}")


@pytest.mark.parametrize(
    ("mode", "point"),
    [("in-place", p) for p in IN_PLACE_POINTS] + [("swap", "staged"), ("swap", "swapped")],
)
def test_sigkill_at_every_step_leaves_the_old_or_the_new_tree(
    tmp_path: Path, mode: str, point: str
) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    old = _stat_snapshot(out)
    proc = _kill_at(out, point, MODES[mode])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    journaled = mode == "in-place" and point not in ("staged", "committed")
    # Until a run rolls it back, `generate --check` says so (it never writes).
    assert (plan(out, NEW).interrupted is not None) == journaled
    root = OutRoot(out)
    with out_lock(root):
        recover(root)
    state = _consistent(out)
    if journaled or point == "staged":
        assert state == "old"
        assert _stat_snapshot(out) == old  # the very same inodes and mtimes
    else:
        assert state == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside OUT
    assert not (out / "e").exists() or state == "old"


def test_sigkill_while_a_rollback_runs_is_finished_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    old = _stat_snapshot(out)
    assert _kill_at(out, "apply-4", 10**6).returncode == -signal.SIGKILL
    # Half a rollback: put one file back by hand, as a killed rollback would have.
    staging = next(tmp_path.glob(".out.flobs-staging-*"))
    os.replace(staging / "old" / "a", out / "a")
    write_tree(out, OLD)  # recovers, then has nothing to do
    assert _stat_snapshot(out) == old


@pytest.mark.parametrize("point", [f"apply-{n}" for n in range(1, 6)] + ["applied"])
def test_an_error_in_the_middle_of_an_in_place_commit_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    old = _stat_snapshot(out)
    monkeypatch.setenv("FLOBS_TEST_FAULT", f"{point}:raise")
    with pytest.raises(SystemFailure, match=f"injected fault at {point}"):
        write_tree(out, NEW, small_change=10**6)
    assert _stat_snapshot(out) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_planted_journal_cannot_reach_outside_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    victim = tmp_path / "victim"
    victim.write_text("not flobs'")
    planted = tmp_path / ".out.flobs-staging-999999999"  # no such process
    planted.mkdir()
    (planted / "journal.json").write_text(
        json.dumps({"removes": [], "writes": ["../victim"], "backups": [], "created": []})
    )
    with pytest.raises(SystemFailure) as caught:
        write_tree(out, NEW)
    assert caught.value.message == (
        f"cannot roll back the interrupted commit of {out}: {planted}/journal.json lists "
        "'../victim', which is not a path inside OUT"
    )
    assert victim.read_text() == "not flobs'"


@pytest.mark.parametrize("check", [False, True])
def test_out_that_is_a_file_is_a_usage_error(tmp_path: Path, check: bool) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(UsageError, match=f"^{out} is not a directory$"):
        plan(out, NEW) if check else write_tree(out, NEW)
    assert out.read_text() == "a file"


# ---- 4. OUT as a symlink, leftovers, what the swap keeps ----------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_out_given_as_a_symlink_is_followed_not_replaced(tmp_path: Path, mode: str) -> None:
    real = tmp_path / "real"
    link = tmp_path / "out"
    write_tree(real, OLD)
    link.symlink_to(real, target_is_directory=True)
    write_tree(link, NEW, small_change=MODES[mode])
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert _files(real) == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real"]


@pytest.mark.parametrize("mode", MODES)
def test_abandoned_staging_is_removed_even_when_nothing_changes(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD)
    dead = tmp_path / ".out.flobs-staging-999999999"
    dead.mkdir()
    (dead / "half-written").write_text("x")
    changes = write_tree(out, OLD, small_change=MODES[mode])
    assert changes.empty
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_swap_keeps_empty_directories_and_directory_symlinks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes").write_text("the user's")
    write_tree(out, OLD)
    (out / "empty" / "deeper").mkdir(parents=True)
    (out / "d" / "kept-empty").mkdir()
    (out / "shared").symlink_to(shared, target_is_directory=True)
    (out / "rel-link").symlink_to("d", target_is_directory=True)
    write_tree(out, NEW, small_change=0)
    assert (out / "empty" / "deeper").is_dir() and not any((out / "empty" / "deeper").iterdir())
    assert (out / "d" / "kept-empty").is_dir()
    assert os.readlink(out / "shared") == str(shared)
    assert os.readlink(out / "rel-link") == "d"
    assert (shared / "notes").read_text() == "the user's"
    assert not (out / "e").exists()  # e/ held only e/y, which flobs removed


# ---- 2. the lock ---------------------------------------------------------------------------


def test_lock_is_reentrant_and_removed_afterwards(tmp_path: Path) -> None:
    root = OutRoot(tmp_path / "out")
    with out_lock(root), out_lock(root):
        lock = tmp_path / ".out.flobs-lock"
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()


def test_lock_file_planted_as_a_symlink_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("not flobs'")
    (tmp_path / ".out.flobs-lock").symlink_to(victim)
    with pytest.raises(SystemFailure, match="cannot lock"):
        write_tree(tmp_path / "out", OLD)
    assert victim.read_text() == "not flobs'"


# ---- validate reads the same manifest: a hostile entry is a finding, never a crash --------


@pytest.mark.parametrize("entry", ["../victim", "a\x00b", "ABSOLUTE", "a//b", "x/"])
def test_validate_reports_a_hostile_manifest_entry_and_reads_nothing_outside(
    tmp_path: Path, entry: str
) -> None:
    from flobs.validate import validate

    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.write_text("x")
    write_tree(out, OLD)
    entry = str(victim) if entry == "ABSOLUTE" else entry
    listed = json.loads((out / MANIFEST).read_text())["files"]
    _set_manifest_files(out, {**listed, entry: {"sha256": "0" * 64, "size": 1}})
    result = validate(out, tools="off")
    found = [(p.file, p.line, p.col, p.check_id, p.key_path, p.message) for p in result.problems]
    # The schema check locates keys in YAML files only; manifest.json is JSON.
    assert found == [
        (
            MANIFEST,
            None,
            None,
            "schema",
            "$.files",
            "has a key that is not a valid name (schema manifest.schema.json)",
        )
    ]
