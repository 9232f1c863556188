"""Deterministic, atomic writing of a generated tree, with a manifest.

A tree is ``{relative posix path: bytes}``. Writing it:

* renders nothing itself: every byte is known before the first write, so an error
  in generation never touches ``OUT``;
* stages the new tree in a sibling directory, hard-linking files whose bytes did
  not change (their inode and mtime stay the same), then swaps the staged tree
  into place; an interruption before the swap leaves ``OUT`` untouched;
* removes files the previous manifest listed that are no longer produced, and
  keeps files flobs never wrote (they are not in the manifest);
* does nothing at all when nothing changed.

``manifest.json`` records the flobs version, the inventory digest and every file's
sha256, which ``flobs validate`` uses to spot hand-edited files.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import difflib
import hashlib
import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from flobs import __version__
from flobs.errors import SystemFailure

MANIFEST = "manifest.json"
Tree = dict[str, bytes]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_manifest(
    files: Mapping[str, bytes],
    *,
    inventory_name: str,
    inventory_sha256: str,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    doc: dict[str, Any] = {
        "generator": "flobs",
        "flobs_version": __version__,
        "inventory": {"name": inventory_name, "sha256": inventory_sha256},
        **(extra or {}),
        "files": {
            path: {"sha256": sha256(data), "size": len(data)}
            for path, data in sorted(files.items())
        },
    }
    return (json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode()


def read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) and isinstance(loaded.get("files"), dict) else None


@dataclass
class ChangeSet:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def diff(self, out: Path, tree: Tree, *, limit_lines: int = 2000) -> Iterator[str]:
        """A unified diff for changed text files (bounded; binary files just named)."""
        emitted = 0
        for path in self.changed:
            try:
                old = (out / path).read_text(encoding="utf-8").splitlines(keepends=True)
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


def _validate_path(path: str) -> PurePosixPath:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"generated path escapes the output tree: {path!r}")
    return p


def plan(out: Path, tree: Tree) -> ChangeSet:
    """Compare ``tree`` with what is in ``out`` now."""
    manifest = read_manifest(out) or {"files": {}}
    old_files: dict[str, Any] = manifest["files"]
    changes = ChangeSet()
    for path in sorted(tree):
        target = out / path
        known = old_files.get(path)
        try:
            if (
                known
                and known.get("size") == len(tree[path])
                and target.stat().st_size == len(tree[path])
            ) or target.exists():
                same = target.read_bytes() == tree[path]
            else:
                changes.added.append(path)
                continue
        except OSError:
            changes.added.append(path)
            continue
        if same:
            changes.unchanged += 1
        else:
            changes.changed.append(path)
    changes.removed = sorted(p for p in old_files if p not in tree and (out / p).exists())
    return changes


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


# Up to this many changed/added/removed files are committed in place (each staged,
# then moved with os.replace); more, and the whole tree is staged and swapped in.
# Both keep OUT untouched on error or Ctrl-C; in place avoids re-linking 60,000
# unchanged files when one host changed (12 s → under 2 s at 10,000 hosts).
SMALL_CHANGE = 512


def write_tree(
    out: Path,
    tree: Tree,
    *,
    progress: Callable[[int], None] | None = None,
    small_change: int = SMALL_CHANGE,
) -> ChangeSet:
    """Make ``out`` hold exactly ``tree`` (plus files flobs did not write). Atomic."""
    for path in tree:
        _validate_path(path)
    changes = plan(out, tree)
    if changes.empty:
        return changes
    out = out.absolute()
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemFailure(f"cannot create {parent}: {err.strerror}") from err
    _remove_abandoned(parent, out.name)
    staging = parent / f".{out.name}.flobs-staging-{os.getpid()}"
    count = len(changes.changed) + len(changes.added) + len(changes.removed)
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        if out.is_dir() and count <= small_change:
            _commit_in_place(out, tree, changes, staging)
        else:
            _swap_in_tree(out, tree, changes, staging, progress)
    except OSError as err:
        raise SystemFailure(
            f"cannot write {out}: {err.strerror or err}",
            hint="check free disk space and permissions",
        ) from err
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return changes


def _remove_abandoned(parent: Path, name: str) -> None:
    """Delete staging/old trees left by a flobs run that was killed (SIGKILL, OOM).

    Each is named after its process id; one whose process is gone is abandoned. A
    live process (a concurrent run) keeps its directory.
    """
    for leftover in parent.glob(f".{name}.flobs-*-*"):
        kind, _, pid = leftover.name.rpartition("-")
        if not pid.isdigit() or not kind.endswith(("flobs-staging", "flobs-old")):
            continue
        if int(pid) == os.getpid() or not _process_exists(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _commit_in_place(out: Path, tree: Tree, changes: ChangeSet, staging: Path) -> None:
    """Stage only what changed, then move it into place with signals held.

    Every byte is written (and every disk error met) while staging, before OUT is
    touched; the commit is renames and unlinks inside OUT's file system, with
    SIGINT/SIGTERM deferred, and the manifest goes last.
    """
    writes = sorted(set(changes.changed) | set(changes.added), key=lambda p: p == MANIFEST)
    for path in writes:
        dest = staging / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(tree[path])
        with contextlib.suppress(OSError):  # keep the mode of the file it replaces
            shutil.copymode(out / path, dest)
    with _deferred_interrupts():
        for path in changes.removed:
            (out / path).unlink(missing_ok=True)
            _prune_empty_dirs((out / path).parent, out)
        for path in writes:
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / path, out / path)


def _prune_empty_dirs(directory: Path, root: Path) -> None:
    while directory != root and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def _swap_in_tree(
    out: Path,
    tree: Tree,
    changes: ChangeSet,
    staging: Path,
    progress: Callable[[int], None] | None,
) -> None:
    """Build the whole new tree beside OUT (unchanged files hard-linked), then swap."""
    old_manifest = read_manifest(out) or {"files": {}}
    with contextlib.suppress(OSError):
        os.chmod(staging, out.stat().st_mode & 0o7777)
    changed = set(changes.changed) | set(changes.added)
    made_dirs: set[Path] = set()
    for n, path in enumerate(sorted(tree)):
        dest = staging / path
        if dest.parent not in made_dirs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(dest.parent)
        if path in changed:
            dest.write_bytes(tree[path])
        else:
            _carry(out / path, dest)
        if progress and n % 256 == 0:
            progress(n)
    # Keep what flobs did not write (not in the old manifest, not produced now).
    if out.is_dir():
        for src in _walk_files(out):
            rel = src.relative_to(out).as_posix()
            if rel in tree or rel in old_manifest["files"]:
                continue
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _carry(src, dest)
    retired: Path | None = None
    with _deferred_interrupts():
        if not out.exists():
            os.rename(staging, out)
        elif not _exchange(staging, out):
            retired = out.parent / f".{out.name}.flobs-old-{os.getpid()}"
            os.rename(out, retired)
            os.rename(staging, out)
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


def _walk_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath) / name
