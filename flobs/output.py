"""Deterministic, atomic writing of a generated tree, with a manifest.

A tree is ``{relative posix path: bytes}``. Writing it:

* renders nothing itself: every byte is known before the first write, so an error
  in generation never touches ``OUT``;
* changes nothing outside ``OUT``: the manifest is input like any other (a pull
  request can edit it), so every path it lists is checked, and every file-system
  change inside ``OUT`` goes through :meth:`OutRoot.target`, which refuses paths
  that leave ``OUT`` or pass through a symlink; ``OUT`` itself may be a symlink and
  is followed, never replaced;
* holds a lock on ``OUT`` (``.OUT.flobs-lock`` beside it, removed afterwards), so a
  second concurrent run waits, then fails with the holder's pid;
* stages what changed in a sibling directory, then commits it in one of two ways,
  each of which leaves ``OUT`` equal to the old or the new tree even under SIGKILL:
  few changes are renamed into place under a journal (old files are hard-linked
  aside first, so a killed or failed commit is rolled back by the next run); many
  changes build the whole tree beside ``OUT`` and swap it in with one
  ``renameat2(RENAME_EXCHANGE)``;
* removes files the previous manifest listed that are no longer produced, and
  keeps files, empty directories and directory symlinks flobs never wrote;
* does nothing at all when nothing changed (but still clears what a killed run
  left behind).

``manifest.json`` records the flobs version, the inventory digest and every file's
sha256, which ``flobs validate`` uses to spot hand-edited files.

Tests drive fault points with ``FLOBS_TEST_FAULT=<point>:<kill|raise|sleep=SECONDS>``
(see :func:`_fault`); the points are ``locked``, ``busy``, ``staged``, ``journal``,
``apply-<n>``, ``applied``, ``committed`` and ``swapped``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import difflib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from flobs import __version__
from flobs.errors import InputError, SystemFailure, UsageError
from flobs.problems import Problem, Severity

MANIFEST = "manifest.json"
JOURNAL = "journal.json"
Tree = dict[str, bytes]

# A manifest for 10,000 hosts is about 60 MB; anything far bigger is not ours.
MANIFEST_MAX_BYTES = 512 * 1024 * 1024
# How long a second `flobs generate` waits for the one writing the same OUT.
LOCK_WAIT_SECONDS = 10.0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class OnDisk:
    """A file that is already in OUT as it should be: hashed from disk this run, under
    the lock when writing, so it is neither rendered nor compared nor rewritten."""

    sha256: str
    size: int


def build_manifest(
    files: Mapping[str, bytes],
    *,
    inventory_name: str,
    inventory_sha256: str,
    extra: Mapping[str, Any] | None = None,
    kept: Mapping[str, OnDisk] | None = None,
) -> bytes:
    entries = {path: OnDisk(sha256(data), len(data)) for path, data in files.items()}
    for path, on_disk in (kept or {}).items():
        entries.setdefault(path, on_disk)
    doc: dict[str, Any] = {
        "generator": "flobs",
        "flobs_version": __version__,
        "inventory": {"name": inventory_name, "sha256": inventory_sha256},
        **(extra or {}),
        "files": {
            path: {"sha256": e.sha256, "size": e.size} for path, e in sorted(entries.items())
        },
    }
    return (_manifest_json(doc) + "\n").encode()


def _manifest_json(doc: Mapping[str, Any]) -> str:
    """``json.dumps(doc, indent=2, ensure_ascii=False)``, with the two big sections
    (a line per file and per host at 10,000 hosts) written directly: json's indenting
    encoder is pure Python and took a second per 100,000 files."""
    q = encode_basestring
    parts = []
    for key, value in doc.items():
        if key == "files" and value:
            body = (
                "{\n"
                + ",\n".join(
                    f'    {q(path)}: {{\n      "sha256": {q(e["sha256"])},\n'
                    f'      "size": {int(e["size"])}\n    }}'
                    for path, e in value.items()
                )
                + "\n  }"
            )
        elif key == "hosts" and value:
            body = (
                "{\n"
                + ",\n".join(
                    f'    {q(name)}: {{\n      "digest": {q(h["digest"])},\n      "files": '
                    + (
                        "[\n" + ",\n".join(f"        {q(f)}" for f in h["files"]) + "\n      ]"
                        if h["files"]
                        else "[]"
                    )
                    + "\n    }"
                    for name, h in value.items()
                )
                + "\n  }"
            )
        else:
            body = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        parts.append(f"  {q(key)}: {body}")
    return "{\n" + ",\n".join(parts) + "\n}" if parts else "{}"


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest as `flobs validate` reads it: None when absent or not a manifest."""
    try:
        loaded: dict[str, Any] = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) and isinstance(loaded.get("files"), dict) else None


# ---- paths inside OUT ----------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMPTY_OR_DOT_PART = re.compile(r"//|/$|(^|/)\.\.?(/|$)")


def path_problem(path: object) -> str | None:
    """Why ``path`` cannot name a file inside OUT, or None when it can."""
    if not isinstance(path, str):
        return f"is a {type(path).__name__}, not a path"
    if not path:
        return "is empty"
    if _CONTROL.search(path):
        return "contains a control character (NUL, newline, ...)"
    if path.startswith("/"):
        return "is an absolute path"
    if _EMPTY_OR_DOT_PART.search(path):
        return "has an empty, `.` or `..` component"
    return None


def _validate_path(path: str) -> str:
    """A path flobs generated: a bad one is a bug in flobs, not the user's input."""
    if path_problem(path) is not None:
        raise ValueError(f"generated path escapes the output tree: {path!r}")
    return path


class OutRoot:
    """OUT, resolved once (a symlink to a directory is followed).

    Every file-system change inside OUT asks :meth:`target` for its path first.
    """

    def __init__(self, out: Path, *, display: str | None = None) -> None:
        self.display = display if display is not None else str(out)
        self.path = Path(os.path.realpath(out))
        # Directories inside OUT already seen to be real directories: 60,000 files
        # share a few thousand of them. Concurrent flobs runs are kept out by the lock.
        self._real_dirs: set[str] = set()

    def show(self, rel: str) -> str:
        return f"{self.display.rstrip('/')}/{rel}"

    def target(self, rel: str) -> Path:
        """``OUT/rel``, after proving it stays inside OUT.

        ``rel`` must be a plain relative path, and no directory on the way may be a
        symlink (it could lead anywhere) or a file. The last component itself may
        be a symlink: replacing or removing it changes only the link, inside OUT.
        """
        reason = path_problem(rel)
        if reason is not None:
            raise UsageError(
                f"{rel!r} {reason}: flobs writes and removes files only inside OUT",
                hint="an entry of manifest.json was edited; fix it or delete manifest.json",
            )
        base = str(self.path)
        parts = rel.split("/")
        for n in range(1, len(parts)):
            prefix = "/".join(parts[:n])
            if prefix in self._real_dirs:
                continue
            try:
                mode = os.lstat(f"{base}/{prefix}").st_mode
            except FileNotFoundError:
                break  # created below, inside OUT
            if stat.S_ISLNK(mode):
                shown = self.show(prefix)
                raise UsageError(
                    f"{shown} is a symlink: flobs will not write or remove {rel} through it",
                    hint="flobs writes only real directories inside OUT; replace the symlink "
                    "with a directory, or remove it",
                )
            if not stat.S_ISDIR(mode):
                shown = self.show(prefix)
                raise UsageError(
                    f"{shown} is not a directory, but flobs writes {rel} below it",
                    hint="move that file out of the way",
                )
            self._real_dirs.add(prefix)
        return self.path / rel

    def remove_dir(self, rel_dir: str) -> None:
        """rmdir OUT/rel_dir (checked like any change); OSError when not empty."""
        os.rmdir(self.target(rel_dir + "/x").parent)
        self._real_dirs = {
            d for d in self._real_dirs if d != rel_dir and not d.startswith(rel_dir + "/")
        }

    def make_parents(self, rel: str) -> None:
        """Create OUT/rel's missing directories (each checked like a write)."""
        parts = rel.split("/")[:-1]
        for n in range(1, len(parts) + 1):
            sub = "/".join(parts[:n])
            path = self.target(sub + "/x").parent
            if not os.path.lexists(path):
                os.mkdir(path)


# ---- the manifest is untrusted input ---------------------------------------------------


def _position(text: str, needle: str) -> tuple[int | None, int | None]:
    index = text.find(needle)
    if index < 0:
        return None, None
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def load_manifest(root: OutRoot) -> dict[str, Any] | None:
    """OUT's manifest, checked as input: None when OUT has none.

    Every listed path must name a file inside OUT; a manifest that is not JSON,
    has the wrong shape or lists anything else is an input error (exit 2) located
    in manifest.json, and nothing is written or removed.
    """
    path = root.path / MANIFEST
    shown = root.show(MANIFEST)

    def problem(message: str, line: int | None = 1, col: int | None = 1, key: str = "$") -> Problem:
        return Problem(
            shown,
            line,
            col,
            "manifest",
            Severity.ERROR,
            message,
            hint="manifest.json is written by flobs; undo the hand edit, or delete the "
            "file (flobs then treats every file in OUT as not its own)",
            key_path=key,
        )

    def refuse(*problems: Problem) -> InputError:
        return InputError(problems, f"{shown} is not a manifest flobs can trust")

    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise SystemFailure(f"cannot read {shown}: {err.strerror}") from err
    if not stat.S_ISREG(st.st_mode):
        raise refuse(problem("is not a regular file (a symlink, directory or device)", None, None))
    if st.st_size > MANIFEST_MAX_BYTES:
        raise refuse(problem(f"is {st.st_size} bytes, more than flobs ever writes", None, None))
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MANIFEST_MAX_BYTES + 1)
    except OSError as err:
        raise SystemFailure(f"cannot read {shown}: {err.strerror}") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise refuse(problem(f"is not UTF-8 (byte {err.start})", None, None)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise refuse(problem(f"is not JSON: {err.msg}", err.lineno, err.colno)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise refuse(problem("must be a JSON object with a `files` object"))
    problems = []
    for rel, entry in doc["files"].items():
        reason = path_problem(rel)
        if reason is None and not isinstance(entry, dict):
            reason = "must map to an object with sha256 and size"
        if reason is None:
            continue
        line, col = _position(text, json.dumps(rel, ensure_ascii=False))
        if line is None:
            line, col = _position(text, json.dumps(rel))
        problems.append(
            problem(
                f"{reason}: flobs writes and removes files only inside OUT",
                line,
                col,
                f"$.files[{json.dumps(rel, ensure_ascii=True)}]",
            )
        )
    if problems:
        raise refuse(*problems)
    return doc


# ---- planning --------------------------------------------------------------------------


@dataclass
class ChangeSet:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    # A commit a killed run left half-applied (rolled back by the next write).
    interrupted: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.interrupted)

    def diff(self, out: Path, tree: Tree, *, limit_lines: int = 2000) -> Iterator[str]:
        """A unified diff for changed text files (bounded; binary files just named)."""
        emitted = 0
        base = Path(os.path.realpath(out))
        for path in self.changed:
            current = base / path
            if current.is_symlink() or not current.is_file():
                yield f"{path} is not a regular file; generate replaces it\n"
                continue
            try:
                old = current.read_text(encoding="utf-8").splitlines(keepends=True)
                new = tree[path].decode("utf-8").splitlines(keepends=True)
            except (UnicodeDecodeError, OSError):
                yield f"Binary or unreadable file {path} differs\n"
                continue
            for line in difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"):
                if emitted >= limit_lines:
                    yield f"... diff truncated after {limit_lines} lines\n"
                    return
                emitted += 1
                yield line if line.endswith("\n") else line + "\n"


def plan(
    out: Path,
    tree: Tree,
    *,
    manifest: dict[str, Any] | None = None,
    display: str | None = None,
    kept: Mapping[str, OnDisk] | None = None,
) -> ChangeSet:
    """Compare ``tree`` with what is in ``out`` now (reads only).

    Files in ``kept`` (not in ``tree``) were hashed from disk by the caller: they count
    as unchanged and are not read again.
    """
    root = OutRoot(out, display=display)
    for path in tree:
        _validate_path(path)
    if os.path.exists(root.path) and not os.path.isdir(root.path):
        raise UsageError(
            f"{root.display} is not a directory", hint="OUT is the directory flobs writes into"
        )
    try:
        return _plan(root, tree, manifest, kept or {})
    except OSError as err:
        raise SystemFailure(
            f"cannot read {root.display}: {err.strerror or err}",
            hint="check the permissions of OUT and the files in it",
        ) from err


def _plan(
    root: OutRoot, tree: Tree, manifest: dict[str, Any] | None, kept: Mapping[str, OnDisk]
) -> ChangeSet:
    if manifest is None:
        manifest = load_manifest(root) or {"files": {}}
    old_files: dict[str, Any] = manifest["files"]
    changes = ChangeSet(interrupted=_interrupted_commit(root))
    changes.unchanged += sum(1 for path in kept if path not in tree)
    for path in sorted(tree):
        target = root.target(path)
        try:
            st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            changes.added.append(path)
            continue
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(
                f"{root.show(path)} is a directory, but flobs writes a file there",
                hint="move the directory out of OUT",
            )
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(tree[path]):
            changes.changed.append(path)
            continue
        with open(target, "rb") as fh:
            same = fh.read() == tree[path]
        if same:
            changes.unchanged += 1
        else:
            changes.changed.append(path)
    for path in sorted(old_files):
        if path in tree or path in kept or path == MANIFEST:
            continue
        target = root.target(path)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            if not stat.S_ISDIR(os.lstat(target).st_mode):  # a file or a link to remove
                changes.removed.append(path)
    return changes


# ---- the lock ---------------------------------------------------------------------------

_held_locks: set[Path] = set()


def _lock_path(root: OutRoot) -> Path:
    return root.path.parent / f".{root.path.name}.flobs-lock"


@contextlib.contextmanager
def out_lock(root: OutRoot, *, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold ``.OUT.flobs-lock`` beside OUT (flock): one writer of OUT at a time.

    Reentrant within a process. The file holds the owner's pid for the message a
    second run prints, and is removed by its owner while still locked; a run that
    locked a removed file notices (the inode changed) and tries again.
    """
    path = _lock_path(root)
    if path in _held_locks:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemFailure(f"cannot create {path.parent}: {err.strerror}") from err
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise SystemFailure(
                f"cannot lock {root.display}: {path}: {err.strerror}",
                hint="the lock file beside OUT must be a regular file flobs can write",
            ) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            _fault("busy")
            if time.monotonic() >= deadline:
                raise SystemFailure(
                    f"another flobs generate holds {root.display} (pid {holder})",
                    hint=f"wait for it to finish; if no such process runs, remove {path}",
                ) from None
            time.sleep(0.05)
            continue
        try:
            same = os.fstat(fd).st_ino == os.lstat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its owner removed it after we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held_locks.add(path)
        _fault("locked")
        yield
    finally:
        _held_locks.discard(path)
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


# ---- writing ----------------------------------------------------------------------------


# Linux renameat2(RENAME_EXCHANGE) swaps two directories atomically.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(rc == 0)


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM during the swap so it is never half-done; re-raise after."""
    received: list[int] = []
    previous: dict[int, Any] = {}

    def hold(signum: int, _frame: object) -> None:
        received.append(signum)

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, hold)
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        previous.clear()
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)
        if received:
            if received[0] == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), received[0])


def _fault(point: str) -> None:
    """Test hook: ``FLOBS_TEST_FAULT=<point>:<action>`` acts when ``point`` is reached.

    ``kill`` sends SIGKILL to this process, ``raise`` raises an I/O error,
    ``sleep=S`` waits S seconds, ``wait=PATH`` waits (at most a minute) until PATH
    exists and ``touch=PATH`` creates PATH. Unset (always, outside tests), it does
    nothing.
    """
    spec = os.environ.get("FLOBS_TEST_FAULT")
    if not spec:
        return
    where, _, action = spec.rpartition(":")
    if where != point:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise OSError(errno.EIO, f"injected fault at {point}")
    elif action.startswith("sleep="):
        time.sleep(float(action.removeprefix("sleep=")))
    elif action.startswith("wait="):
        deadline = time.monotonic() + 60
        while not os.path.exists(action.removeprefix("wait=")) and time.monotonic() < deadline:
            time.sleep(0.02)
    elif action.startswith("touch="):
        Path(action.removeprefix("touch=")).touch()


# Up to this many changed/added/removed files are committed in place (each staged,
# then moved with os.replace under a journal); more, and the whole tree is staged
# and swapped in. Both keep OUT the old or the new tree on error, Ctrl-C or
# SIGKILL; in place avoids re-linking 60,000 unchanged files when one host changed
# (12 s → under 2 s at 10,000 hosts).
SMALL_CHANGE = 512


def write_tree(
    out: Path,
    tree: Tree,
    *,
    progress: Callable[[int], None] | None = None,
    small_change: int = SMALL_CHANGE,
    lock_wait: float = LOCK_WAIT_SECONDS,
    display: str | None = None,
    kept: Mapping[str, OnDisk] | None = None,
) -> ChangeSet:
    """Make ``out`` hold exactly ``tree`` and ``kept`` (plus files flobs did not write).

    ``kept`` are files the caller hashed from disk under the lock (:class:`OnDisk`):
    they stay as they are. Atomic.
    """
    for path in tree:
        _validate_path(path)
    kept = {path: k for path, k in (kept or {}).items() if path not in tree}
    root = OutRoot(out, display=display)
    with out_lock(root, wait=lock_wait):
        recover(root)
        changes = plan(out, tree, display=display, kept=kept)
        if changes.empty:
            return changes
        staging = root.path.parent / f".{root.path.name}.flobs-staging-{os.getpid()}"
        count = len(changes.changed) + len(changes.added) + len(changes.removed)
        try:
            if os.path.lexists(staging):
                shutil.rmtree(staging)
            staging.mkdir()
            if root.path.is_dir() and count <= small_change:
                _commit_in_place(root, tree, changes, staging)
            else:
                _swap_in_tree(root, tree, kept, changes, staging, progress)
        except OSError as err:
            raise SystemFailure(
                f"cannot write {root.display}: {err.strerror or err}",
                hint="check free disk space and permissions",
            ) from err
        finally:
            if os.path.lexists(staging):
                shutil.rmtree(staging, ignore_errors=True)
    return changes


def _leftovers(root: OutRoot) -> Iterator[tuple[Path, str, int]]:
    """(path, kind, pid) of every staging/old tree runs left beside OUT."""
    for leftover in sorted(root.path.parent.glob(f".{root.path.name}.flobs-*-*")):
        kind, _, pid = leftover.name.rpartition("-")
        if pid.isdigit() and kind.endswith(("flobs-staging", "flobs-old")):
            yield leftover, kind.rpartition(".flobs-")[2], int(pid)


def _abandoned(pid: int) -> bool:
    return pid == os.getpid() or not _process_exists(pid)


def _interrupted_commit(root: OutRoot) -> str | None:
    """Why OUT is half-committed by a killed run, or None (read only)."""
    with contextlib.suppress(OSError):
        for leftover, kind, pid in _leftovers(root):
            if not _abandoned(pid):
                continue
            if kind == "staging" and (leftover / JOURNAL).is_file():
                return (
                    f"a flobs generate (pid {pid}) was killed while committing {root.display}; "
                    "run flobs generate to roll it back"
                )
            if kind == "old" and not os.path.lexists(root.path):
                return f"a flobs generate (pid {pid}) was killed while swapping {root.display}"
    return None


def recover(root: OutRoot) -> None:
    """Undo what killed runs left: roll back a journaled commit, restore a swapped-out
    OUT, and delete their staging and old trees. Call with the lock held.

    Each leftover is named after its process id; one whose process is gone is
    abandoned. A live process (a concurrent run) keeps its directory.
    """
    try:
        leftovers = list(_leftovers(root))
    except OSError:
        return
    for leftover, kind, pid in leftovers:
        if not _abandoned(pid) or os.path.islink(leftover):
            continue
        journal = leftover / JOURNAL
        if kind == "staging" and journal.is_file() and not journal.is_symlink():
            _roll_back(root, leftover)
        if kind == "old" and not os.path.lexists(root.path):
            os.rename(leftover, root.path)  # killed between the two renames of a swap
            continue
        shutil.rmtree(leftover, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _write_journal(staging: Path, doc: dict[str, Any]) -> None:
    """Write the journal durably; its appearance is the point after which OUT may change."""
    tmp = staging / (JOURNAL + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(doc).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, staging / JOURNAL)


def _commit_in_place(root: OutRoot, tree: Tree, changes: ChangeSet, staging: Path) -> None:
    """Stage only what changed, journal it, then move it into place with signals held.

    Every byte is written (and every disk error met) while staging, before OUT is
    touched. The old version of every file about to be replaced or removed is
    hard-linked into ``staging/old`` and the journal lists them, so a commit that
    fails is rolled back here and one that is killed is rolled back by the next run
    (:func:`recover`). The manifest goes last.
    """
    out = root.path
    writes = sorted(set(changes.changed) | set(changes.added), key=lambda p: (p == MANIFEST, p))
    new_dir, old_dir = staging / "new", staging / "old"
    for path in writes:
        dest = new_dir / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(tree[path])
        with contextlib.suppress(OSError):  # keep the mode of the file it replaces
            if not os.path.islink(out / path):
                shutil.copymode(out / path, dest)
    backups = []
    for path in [*changes.removed, *writes]:
        target = root.target(path)
        if os.path.lexists(target):
            (old_dir / path).parent.mkdir(parents=True, exist_ok=True)
            os.link(target, old_dir / path, follow_symlinks=False)
            backups.append(path)
    created = sorted(
        {
            "/".join(parts[:n])
            for path in writes
            for parts in [path.split("/")]
            for n in range(1, len(parts))
            if not os.path.lexists(out.joinpath(*parts[:n]))
        }
    )
    _fault("staged")
    _write_journal(
        staging,
        {"removes": changes.removed, "writes": writes, "backups": backups, "created": created},
    )
    _fault("journal")
    step = 0
    with _deferred_interrupts():
        try:
            for path in changes.removed:
                os.unlink(root.target(path))
                _prune_empty_dirs(root, path)
                step += 1
                _fault(f"apply-{step}")
            for path in writes:
                root.make_parents(path)
                os.replace(new_dir / path, root.target(path))
                step += 1
                _fault(f"apply-{step}")
            _fault("applied")
        except BaseException:
            _roll_back(root, staging)
            raise
        (staging / JOURNAL).unlink()  # the commit point: from here on, keep the new tree
        _fault("committed")


def _roll_back(root: OutRoot, staging: Path) -> None:
    """Put back every file a journaled commit replaced or removed; drop what it added.

    Idempotent (a rollback killed half-way is finished by the next one) and
    checked like any other change: the journal is read from disk, so its paths
    are treated as input.
    """
    journal = staging / JOURNAL
    try:
        doc = json.loads(journal.read_text(encoding="utf-8"))
        removes = [str(p) for p in doc["removes"]]
        writes = [str(p) for p in doc["writes"]]
        backups = {str(p) for p in doc["backups"]}
        created = [str(p) for p in doc["created"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemFailure(
            f"cannot roll back the interrupted commit of {root.display}: {journal} is unreadable",
            hint=f"compare {root.display} with {staging}/old by hand, then remove {staging}",
        ) from err
    for path in [*removes, *writes, *created]:
        if path_problem(path) is not None:
            raise SystemFailure(
                f"cannot roll back the interrupted commit of {root.display}: {journal} lists "
                f"{path!r}, which is not a path inside OUT",
                hint=f"flobs never writes such a journal; remove {staging}",
            )
    try:
        for path in [*writes, *removes]:
            saved = staging / "old" / path
            if path in backups:
                if os.path.lexists(saved):
                    root.make_parents(path)
                    os.replace(saved, root.target(path))
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(root.target(path))
        for directory in sorted(created, key=lambda d: d.count("/"), reverse=True):
            with contextlib.suppress(OSError):  # not empty: it holds the user's files
                root.remove_dir(directory)
    except OSError as err:
        raise SystemFailure(
            f"cannot roll back the interrupted commit of {root.display}: {err.strerror}",
            hint=f"the old files are in {staging}/old; the journal is {journal}",
        ) from err
    journal.unlink()


def _prune_empty_dirs(root: OutRoot, removed: str) -> None:
    parts = removed.split("/")[:-1]
    while parts:
        try:
            root.remove_dir("/".join(parts))
        except OSError:  # not empty (or gone): stop here
            return
        parts.pop()


def _swap_in_tree(
    root: OutRoot,
    tree: Tree,
    kept: Mapping[str, OnDisk],
    changes: ChangeSet,
    staging: Path,
    progress: Callable[[int], None] | None,
) -> None:
    """Build the whole new tree beside OUT (unchanged files hard-linked), then swap."""
    out = root.path
    old_manifest = load_manifest(root) or {"files": {}}
    with contextlib.suppress(OSError):
        os.chmod(staging, out.stat().st_mode & 0o7777)
    changed = set(changes.changed) | set(changes.added)
    made_dirs: set[Path] = set()
    for n, path in enumerate(sorted([*tree, *kept])):
        dest = staging / path
        if dest.parent not in made_dirs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(dest.parent)
        if path in changed:
            dest.write_bytes(tree[path])
        else:
            _carry(root.target(path), dest)
        if progress and n % 256 == 0:
            progress(n)
    # Keep what flobs did not write (not in the old manifest, not produced now):
    # files, empty directories and symlinks, directory symlinks included.
    if out.is_dir():
        for dirpath, dirs, files in os.walk(out):
            here = Path(dirpath)
            for name in dirs:
                src = here / name
                rel = src.relative_to(out).as_posix()
                dest = staging / rel
                if os.path.islink(src):
                    if rel not in tree and rel not in kept and rel not in old_manifest["files"]:
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        os.symlink(os.readlink(src), dest)
                elif not dest.exists():
                    dest.mkdir(parents=True)
                    with contextlib.suppress(OSError):
                        os.chmod(dest, src.stat().st_mode & 0o7777)
            for name in files:
                src = here / name
                rel = src.relative_to(out).as_posix()
                if rel in tree or rel in kept or rel in old_manifest["files"]:
                    continue
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                _carry(src, dest)
        # A directory that only held files flobs removed goes, as in place.
        for path in changes.removed:
            parts = path.split("/")[:-1]
            while parts:
                with contextlib.suppress(OSError):
                    (staging / "/".join(parts)).rmdir()
                parts.pop()
    _fault("staged")
    retired: Path | None = None
    with _deferred_interrupts():
        if not out.exists():
            os.rename(staging, out)
        elif not _exchange(staging, out):
            retired = out.parent / f".{out.name}.flobs-old-{os.getpid()}"
            os.rename(out, retired)
            os.rename(staging, out)
        _fault("swapped")
    # The old tree (now in `staging` after an exchange, or `retired`) is deleted
    # outside the held-signals block: Ctrl-C need not wait for 60,000 unlinks.
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _carry(src: Path, dest: Path) -> None:
    """Reuse an unchanged file: a hard link keeps its inode and mtime."""
    try:
        os.link(src, dest, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dest, follow_symlinks=False)
