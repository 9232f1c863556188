"""Per-file validate results kept between runs, so an unchanged file is not checked again.

One pack file per OUT directory, in the cache directory (``$XDG_CACHE_HOME/flobs``,
else ``~/.cache/flobs``; ``--cache-dir``), never inside OUT. It holds, per file of
OUT, the sha256 of its bytes and the problems (or facts) each per-file check found
in it, and per check the *context* its results are valid in: a digest of flobs' own
code, the shipped schemas, the check's id, the inventory's sha256 when the check
reads the inventory, and the real tool's path and version for tool checks. A result
is used only when both the file's sha256 and the check's context match.

Never trusted: a pack that does not parse, has another format, another OUT or a
malformed entry is ignored (that entry, or all of it) and rewritten. File contents are
not stored, only problems, and those are redacted as every report is. The pack is
written to a temporary file and renamed over the old one, so a reader sees the old
pack or the new one; two validates at once each write a whole pack, the last one wins,
and the other's results are simply computed again next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import flobs
from flobs.problems import Problem, Severity
from flobs.redact import redact

FORMAT = "flobs-validate-cache/1"
_SEVERITIES = {s.value: s for s in Severity}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/flobs``, else ``~/.cache/flobs`` (XDG base directory spec)."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "flobs"


def is_inside(path: Path, directory: Path) -> bool:
    """Whether ``path`` is ``directory`` or below it, symlinks resolved."""
    p, d = path.resolve(), directory.resolve()
    return p == d or d in p.parents


def code_digest() -> str:
    """sha256 over flobs' version and its own source files: a result computed by other
    code (another release, or a checkout with local changes) is never reused."""
    h = hashlib.sha256(flobs.__version__.encode())
    root = Path(flobs.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def schemas_digest() -> str:
    """sha256 over the shipped JSON Schemas, which the schema checks apply."""
    h = hashlib.sha256()
    root = resources.files("flobs.schemas")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            h.update(entry.name.encode() + b"\0" + entry.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass
class CacheStats:
    """Exact counts of one run, for `flobs validate --stats` and the tests."""

    hits: int = 0  # per-file results taken from the cache
    misses: int = 0  # per-file results computed
    ignored: int = 0  # entries not trusted (malformed, foreign), computed instead
    pack: str = "none"  # "loaded", "none" (no pack yet) or why the pack was ignored
    written: bool = False


@dataclass
class ResultCache:
    """The pack of one OUT: lookups while validating, the new pack written at the end."""

    path: Path  # the pack file
    out: str  # realpath of OUT, recorded in the pack
    contexts: dict[str, str]  # check or fact id → its context digest in this run
    stats: CacheStats = field(default_factory=CacheStats)
    _old_contexts: dict[str, str] = field(default_factory=dict)
    _old: dict[str, Any] = field(default_factory=dict)
    _new: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # Checks of several files at once (promtool test rules): id → [inputs digest, rows].
    _old_trees: dict[str, Any] = field(default_factory=dict)
    _new_trees: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, directory: Path, out: Path, contexts: dict[str, str]) -> ResultCache:
        real = os.path.realpath(out)
        name = hashlib.sha256(real.encode()).hexdigest()[:32]
        cache = cls(directory / "validate" / f"{name}.json", real, contexts)
        cache._load()
        return cache

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as err:
            self.stats.pack = f"unreadable ({err.strerror})"
            return
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.stats.pack = "ignored: not JSON (truncated or corrupted)"
            return
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            self.stats.pack = "ignored: not a flobs validate cache of this format"
            return
        contexts, files = doc.get("contexts"), doc.get("files")
        if doc.get("out") != self.out or not isinstance(contexts, dict):
            self.stats.pack = "ignored: written for another OUT"
            return
        if not isinstance(files, dict):
            self.stats.pack = "ignored: no file table"
            return
        self._old_contexts = {
            str(k): v for k, v in contexts.items() if isinstance(k, str) and isinstance(v, str)
        }
        self._old = files
        trees = doc.get("trees")
        self._old_trees = trees if isinstance(trees, dict) else {}
        self.stats.pack = "loaded"

    def lookup(self, path: str, sha: str) -> tuple[dict[str, Any], bool]:
        """``{id: problems or fact}`` this run may use for ``path`` with bytes ``sha``,
        and whether an entry was there but not exactly the shape written here (ignored;
        the caller counts it, in whichever process it runs)."""
        entry = self._old.get(path)
        if entry is None:
            return {}, False
        results = _entry(entry, path)
        if results is None:
            return {}, True
        if entry[0] != sha:
            return {}, False
        return {
            rid: value
            for rid, value in results.items()
            if self.contexts.get(rid) is not None
            and self._old_contexts.get(rid) == self.contexts[rid]
        }, False

    def lookup_tree(self, check_id: str, inputs: str) -> list[Problem] | None:
        """The problems a check of several files found when its inputs had the digest
        ``inputs``; None when not cached (or not trustworthy: counted as ignored)."""
        entry = self._old_trees.get(check_id)
        if entry is None or self._old_contexts.get(check_id) != self.contexts.get(check_id):
            return None
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            self.stats.ignored += 1
            return None
        if entry[0] != inputs:
            return None
        problems = decode_problems(entry[1], check_id, None)
        if problems is None:
            self.stats.ignored += 1
        return problems

    def store_tree(self, check_id: str, inputs: str, problems: list[Problem]) -> None:
        self._new_trees[check_id] = [inputs, encode_problems(problems)]

    def store(self, path: str, sha: str, results: dict[str, Any]) -> None:
        """Results of this run for ``path`` (problems already redacted, or facts)."""
        have = self._new.get(path)
        if have is not None and have[0] == sha:
            have[1].update(results)
        else:
            self._new[path] = (sha, dict(results))

    def save(self, present: set[str]) -> None:
        """Write the pack: this run's results, plus older ones still valid for files
        present with the same bytes (checks this run did not run, e.g. --tools off)."""
        contexts = dict(self._old_contexts)
        contexts.update(self.contexts)
        files: dict[str, Any] = {}
        for path in sorted(present):
            new = self._new.get(path)
            old = self._old.get(path)
            old_results = _entry(old, path) if old is not None else None
            merged: dict[str, Any] = {}
            sha = new[0] if new else None
            old_sha = old[0] if old_results is not None and old is not None else None
            if old_results is not None and old_sha is not None and sha in (None, old_sha):
                sha = old_sha
                merged = {
                    rid: v
                    for rid, v in old_results.items()
                    if rid not in self.contexts or self._old_contexts.get(rid) == contexts[rid]
                }
            if new:
                merged.update(new[1])
            if sha is not None and merged:
                files[path] = [sha, merged]
        trees = {
            rid: entry
            for rid, entry in self._old_trees.items()
            if rid not in self.contexts or self._old_contexts.get(rid) == contexts[rid]
        }
        trees.update(self._new_trees)
        doc = {
            "format": FORMAT,
            "out": self.out,
            "contexts": contexts,
            "files": files,
            "trees": trees,
        }
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".pack-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.stats.written = True


def _entry(entry: Any, path: str) -> dict[str, Any] | None:
    """The results of a well-formed entry, else None (never trusted)."""
    if not (
        isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and len(entry[0]) == 64
        and isinstance(entry[1], dict)
    ):
        return None
    out: dict[str, Any] = {}
    for rid, value in entry[1].items():
        if not isinstance(rid, str):
            return None
        if rid.startswith("facts:"):
            if not (isinstance(value, list) and len(value) == 1):
                return None
            out[rid] = value
            continue
        if not isinstance(value, list):
            return None
        out[rid] = value  # rows: decode_problems checks each where it is used
    return out


def encode_problems(problems: list[Problem]) -> list[list[Any]]:
    """Problems as JSON rows, redacted as every report is (nothing secret on disk)."""
    return [
        [
            None if p.file is None else redact(p.file),
            p.line,
            p.col,
            p.severity.value,
            redact(p.message),
            None if p.hint is None else redact(p.hint),
            None if p.key_path is None else redact(p.key_path),
        ]
        for p in problems
    ]


def decode_problems(rows: Any, check_id: str, path: str | None) -> list[Problem] | None:
    """Rows back into problems of ``check_id`` about ``path`` (any file when None);
    None when malformed."""
    if not isinstance(rows, list):
        return None
    out: list[Problem] = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 7):
            return None
        file, line, col, sev, message, hint, key_path = row
        if file != path if path is not None else not isinstance(file, str | None):
            return None
        if sev not in _SEVERITIES or not isinstance(message, str):
            return None
        if not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (line, col)
        ):
            return None
        if not all(v is None or isinstance(v, str) for v in (hint, key_path)):
            return None
        out.append(Problem(file, line, col, check_id, _SEVERITIES[sev], message, hint, key_path))
    return out


def _optional_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))
