"""The real `flobs` program under attack: closed pipes, Ctrl-C, kills, concurrent runs,
hostile manifests and symlinks, with real processes and real pipes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flobs.output import MANIFEST, sha256
from tests.conftest import EXAMPLE_INVENTORY
from tests.helpers import CliResult, run_flobs

FLOBS = [sys.executable, "-m", "flobs"]
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def _inventory(tmp_path: Path, name: str = "inventory.yaml", rack: str = "r11") -> Path:
    inv = tmp_path / name
    inv.write_text(
        EXAMPLE_INVENTORY.read_text().replace("labels: {rack: r11}", f"labels: {{rack: {rack}}}", 1)
    )
    return inv


def _generate(inv: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> CliResult:
    return run_flobs("generate", "-i", inv, "-o", out, *extra, env=env)


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _agrees_with_manifest(out: Path) -> None:
    files = _files(out)
    manifest = json.loads(files.pop(MANIFEST))
    assert {path: entry["sha256"] for path, entry in manifest["files"].items()} == {
        path: sha256(data) for path, data in files.items()
    }


@pytest.fixture
def stale_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    assert _generate(EXAMPLE_INVENTORY, out).code == 0
    prom = out / "central" / "prometheus.yml"
    prom.write_text(prom.read_text().replace("scrape_interval: 30s", "scrape_interval: 1m", 1))
    return out


# ---- 5. a closed pipe never turns findings into 0 ----------------------------------------

STALE_COMMANDS = {
    "generate --check": ["generate", "-i", str(EXAMPLE_INVENTORY), "-o", "{out}", "--check"],
    "validate": ["validate", "{out}", "--tools", "off"],
    "validate json": ["validate", "{out}", "--tools", "off", "--format", "json"],
    "validate junit": ["validate", "{out}", "--tools", "off", "--format", "junit"],
}


@pytest.mark.parametrize("command", STALE_COMMANDS)
def test_reader_gone_before_the_first_write_keeps_exit_1(stale_out: Path, command: str) -> None:
    args = [a.replace("{out}", str(stale_out)) for a in STALE_COMMANDS[command]]
    with subprocess.Popen(
        [*FLOBS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # `| true`: the reader is gone before flobs writes
        stderr = proc.stderr.read()
        code = proc.wait(timeout=120)
    assert code == 1, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert "BrokenPipe" not in stderr


@pytest.mark.parametrize(
    ("command", "reader"), [("generate --check", "head -1"), ("validate", "true")]
)
def test_shell_pipeline_keeps_flobs_exit_1(stale_out: Path, command: str, reader: str) -> None:
    args = [a.replace("{out}", str(stale_out)) for a in STALE_COMMANDS[command]]
    script = f'"$@" | {reader} >/dev/null; exit "${{PIPESTATUS[0]}}"'
    proc = subprocess.run(
        ["bash", "-c", script, "flobs", *FLOBS, *args],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


# ---- 6. Ctrl-C at any moment: 130, no traceback ------------------------------------------


def _interrupt(args: list[str], delay: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Start the installed `flobs` program, wait until its own code runs (the import of
    flobs.__main__ has finished, as -X importtime reports), then SIGINT after ``delay``."""
    script = Path(sys.executable).with_name("flobs")
    with subprocess.Popen(
        [str(script), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**ENV, "PYTHONPROFILEIMPORTTIME": "1", **(env or {})},
        text=True,
    ) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.rstrip().endswith("| flobs.__main__"):
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        code = proc.wait(timeout=60)
    text = "".join(seen) + rest
    return code, "\n".join(
        line for line in text.splitlines() if not line.startswith("import time:")
    )


def test_the_handler_is_in_place_before_any_module_site_has_not_loaded() -> None:
    """What runs before flobs' handler is Python's start-up alone: importing the entry
    point loads no module the interpreter and ``site`` have not loaded already (``signal``
    pulled in enum, functools and collections first: ~9 ms of tracebacks on Ctrl-C)."""
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import flobs.__main__\n"
        "added = sorted(set(sys.modules) - before)\n"
        "import signal\n"
        "print(added)\n"
        "print(signal.getsignal(signal.SIGINT) is flobs.__main__.interrupted_before_work)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        "['flobs', 'flobs.__main__']\nTrue\n",
        "",
    )


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.35])
def test_sigint_while_starting_exits_130_without_traceback(tmp_path: Path, delay: float) -> None:
    code, stderr = _interrupt(
        ["generate", "-i", str(EXAMPLE_INVENTORY), "-o", str(tmp_path / "o")], delay
    )
    assert (code, stderr.strip()) == (130, "interrupted"), stderr


@pytest.mark.parametrize("point", ["locked", "staged", "journal"])
def test_sigint_while_generate_works_exits_130_and_keeps_out(tmp_path: Path, point: str) -> None:
    out = tmp_path / "out"
    assert _generate(EXAMPLE_INVENTORY, out).code == 0
    before = _files(out)
    inv = _inventory(tmp_path, rack="r99")
    code, stderr = _interrupt(
        ["generate", "-i", str(inv), "-o", str(out)], 0.5, {"FLOBS_TEST_FAULT": f"{point}:sleep=5"}
    )
    assert (code, stderr.strip()) == (130, "interrupted"), stderr
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yaml", "out"]


# ---- 2. the lock, with two real processes -------------------------------------------------


def test_second_generate_waits_or_exits_3_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    lock = tmp_path / ".out.flobs-lock"
    release, waiting = tmp_path / "release", tmp_path / "waiting"
    inv = _inventory(tmp_path)
    with subprocess.Popen(
        [*FLOBS, "generate", "-i", str(EXAMPLE_INVENTORY), "-o", str(out)],
        env={**ENV, "FLOBS_TEST_FAULT": f"locked:wait={release}"},  # holds the lock
        stderr=subprocess.DEVNULL,
    ) as holder:
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip() == str(holder.pid)):
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.02)
        impatient = _generate(inv, out, "--lock-wait", "0.2")
        assert (impatient.code, impatient.stdout) == (3, "")
        assert impatient.stderr.splitlines() == [
            f"error: another flobs generate holds {out} (pid {holder.pid})",
            f"    hint: wait for it to finish; if no such process runs, remove {lock}",
        ]
        with subprocess.Popen(
            [*FLOBS, "generate", "-i", str(inv), "-o", str(out), "--lock-wait", "120"],
            env={**ENV, "FLOBS_TEST_FAULT": f"busy:touch={waiting}"},  # says it waits
            stderr=subprocess.DEVNULL,
        ) as patient:
            while not waiting.exists():
                assert time.monotonic() < deadline and patient.poll() is None
                time.sleep(0.02)
            assert not list(out.glob("*"))  # the holder has written nothing yet
            release.touch()
            assert holder.wait(timeout=120) == 0
            assert patient.wait(timeout=120) == 0
    _agrees_with_manifest(out)
    assert _generate(inv, out, "--check").code == 0  # the patient one came second
    assert not lock.exists()


# ---- 3. SIGKILL in the middle of a real commit ---------------------------------------------


def test_sigkill_mid_commit_is_rolled_back_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _generate(EXAMPLE_INVENTORY, out).code == 0
    before = _files(out)
    inv = _inventory(tmp_path, rack="r99")
    killed = _generate(inv, out, env={"FLOBS_TEST_FAULT": "apply-3:kill"})
    assert killed.code == -signal.SIGKILL
    assert _files(out) != before  # half-applied on disk...
    check = _generate(inv, out, "--check")
    assert check.code == 1
    assert check.stdout.startswith("interrupted: a flobs generate (pid ")
    assert "was killed while committing" in check.stdout
    # ...and the next run rolls it back before looking: the old tree needs no change.
    again = _generate(EXAMPLE_INVENTORY, out)
    assert again.code == 0, again.stderr
    assert "0 added, 0 changed, 0 removed" in again.stderr
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yaml", "out"]


# ---- 1 and 4 through the CLI ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "entry"),
    [
        ((), "../victim"),
        (("--check",), "../victim"),
        (("--host", "fl-eu1-a-01"), "hosts/../../victim"),
        (("--host", "fl-eu1-a-01"), "ABSOLUTE"),
    ],
)
def test_hostile_manifest_is_exit_2_located_for_every_mode(
    tmp_path: Path, extra: tuple[str, ...], entry: str
) -> None:
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.write_text("not flobs'")
    entry = str(victim) if entry == "ABSOLUTE" else entry
    assert _generate(EXAMPLE_INVENTORY, out).code == 0
    doc = json.loads((out / MANIFEST).read_text())
    doc["files"][entry] = {"sha256": "0" * 64, "size": 10}
    (out / MANIFEST).write_text(json.dumps(doc, indent=2))
    line = (out / MANIFEST).read_text().splitlines().index(f"    {json.dumps(entry)}: {{") + 1
    res = _generate(_inventory(tmp_path, rack="r99"), out, *extra)
    reason = (
        "is an absolute path" if entry.startswith("/") else "has an empty, `.` or `..` component"
    )
    assert (res.code, res.stdout) == (2, "")
    assert res.stderr.splitlines()[0] == (
        f"{out}/manifest.json:{line}:5: $.files[{json.dumps(entry)}]: {reason}: "
        "flobs writes and removes files only inside OUT"
    )
    assert res.stderr.splitlines()[-1] == (
        f"error: {out}/manifest.json is not a manifest flobs can trust; nothing was written"
    )
    assert victim.read_text() == "not flobs'"


def test_empty_out_is_a_usage_error(tmp_path: Path) -> None:
    res = run_flobs("generate", "-i", EXAMPLE_INVENTORY, "-o", "", cwd=tmp_path)
    assert (res.code, res.stdout) == (2, "")
    assert "OUT must not be empty (write `.` for this directory)" in res.stderr
    assert list(tmp_path.iterdir()) == []


# ---- 9. nothing outside OUT is written or removed, whatever happens ------------------------


def _outside_snapshot(root: Path, out: Path) -> dict[str, tuple[str, object, int]]:
    """Every file and symlink under ``root`` but outside ``out``: (kind, content, mtime)."""
    snap: dict[str, tuple[str, object, int]] = {}
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        if here == out or out in here.parents:
            dirs.clear()
            continue
        for name in [*dirs, *files]:
            path = here / name
            if path == out:
                continue
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                snap[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif path.is_file():
                snap[rel] = ("file", path.read_bytes(), st.st_mtime_ns)
            else:
                snap[rel] = ("dir", None, 0)
    return snap


def test_nothing_outside_out_is_ever_written_or_removed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    out = root / "work" / "out"
    link = root / "out-link"  # OUT is reached through a symlink throughout
    outside = root / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret").write_text("keep")
    (outside / "sub" / "file").write_text("keep too")
    victim = root / "victim.txt"
    victim.write_text("not flobs'")
    inv_a = _inventory(root, "a.yaml", rack="r11")
    inv_b = _inventory(root, "b.yaml", rack="r99")
    hostile = root / "hostile.yaml"
    hostile.write_text(EXAMPLE_INVENTORY.read_text().replace("fl-eu1-a-01", "../../escape", 1))
    (root / "work").mkdir()
    link.symlink_to(out, target_is_directory=True)
    assert _generate(inv_a, link).code == 0
    before = _outside_snapshot(root, out)

    # Symlinks inside OUT: a generated file pointing at the victim, a directory outside.
    prom = out / "hosts" / "fl-eu1-a-01" / "prometheus.yml"
    prom.unlink()
    prom.symlink_to(victim)
    (out / "userlink").symlink_to(outside, target_is_directory=True)
    manifest = (out / MANIFEST).read_text()
    for entry in [
        "../victim.txt",
        str(victim),
        "userlink/secret",
        "hosts/../../victim.txt",
        "../../outside/sub/file",
    ]:
        doc = json.loads(manifest)
        doc["files"][entry] = {"sha256": "0" * 64, "size": 4}
        (out / MANIFEST).write_text(json.dumps(doc, indent=2))
        for extra in [(), ("--check",), ("--host", "fl-eu1-a-01")]:
            res = _generate(inv_b, link, *extra)
            assert res.code == 2, (entry, extra, res.stderr)
            assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    (out / MANIFEST).write_text(manifest)
    assert _generate(hostile, link).code == 2  # a hostile host name never reaches the disk
    assert _generate(inv_b, link).code == 0
    assert not prom.is_symlink()  # the link was replaced inside OUT, the victim untouched

    # Concurrent runs, and a run killed mid-commit followed by one that recovers.
    runs = [
        subprocess.Popen(
            [*FLOBS, "generate", "-i", str(inv), "-o", str(link)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for inv in (inv_a, inv_b, inv_a)
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0, 0]
    _agrees_with_manifest(out)
    assert _generate(inv_a, link, env={"FLOBS_TEST_FAULT": "apply-2:kill"}).code in (
        0,
        -signal.SIGKILL,
    )
    assert _generate(inv_b, link, "--lock-wait", "30").code == 0
    _agrees_with_manifest(out)

    assert link.is_symlink() and out.is_dir()
    assert _outside_snapshot(root, out) == before
