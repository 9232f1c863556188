"""One index of an output tree for validate: every file listed once, classified once.

The tree is walked once. Each file gets one ``FileKind`` (path patterns, parser,
schema) from the table in ``flobs.checks.kinds``; checks ask the index for the files
matching their patterns instead of matching every path against every pattern.

10,000 hosts are 60,000 paths but a few dozen *shapes*: ``hosts/<name>/…`` paths
differ only in the host's name, and no kind or check pattern names a host. So a path
is classified by its shape (the host segment replaced by ``*``), computed once per
shape, and a pattern list is matched against the shapes, not the paths. Patterns that
could single out one host (a user's ``validation.ignore`` entry, say) are matched
path by path; only the patterns for which the shape decides are matched per shape.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Literal

Parser = Literal["yaml", "json", "alloy", "none"]


@dataclass(frozen=True)
class FileKind:
    """What a generated file is: where it lives, how it parses, which schema it has.

    ``schema_check`` is the check that reports the schema's findings (flobs' own
    files: ``schema``; the log agents and the collector have checks of their own).
    """

    name: str
    patterns: tuple[str, ...]
    parser: Parser
    schema: str | None = None
    schema_check: str = "schema"


@lru_cache(maxsize=512)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """``*`` never crosses a ``/``; ``**/`` spans any number of directories."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:[^/]+/)*"
            i += 3
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def matches(path: str, patterns: str | Iterable[str]) -> bool:
    pats = (patterns,) if isinstance(patterns, str) else patterns
    return any(pattern_regex(p).match(path) for p in pats)


def shape(path: str) -> str:
    """``hosts/<name>/rest`` → ``hosts/*/rest``; every other path is its own shape."""
    if path.startswith("hosts/"):
        end = path.find("/", 6)
        if end > 6:
            return "hosts/*" + path[end:]
    return path


def _shape_decides(pattern: str) -> bool:
    """Whether every path of one shape matches ``pattern`` alike.

    True when the pattern cannot see the host segment: it names ``hosts/*/…``, starts
    with a literal directory other than ``hosts``, or is ``**/`` plus a file name.
    """
    first, _, rest = pattern.partition("/")
    if first == "hosts":
        return rest.startswith("*/")
    if first == "**":
        return "/" not in rest
    return "*" not in first


class TreeIndex:
    """The files of OUT (posix, relative, sorted), their kinds, and pattern lookups."""

    def __init__(self, out: Path, kinds: Sequence[FileKind]) -> None:
        self.out = out
        self._kinds = tuple(kinds)
        self.files: list[str] = _walk(out)
        self._set = frozenset(self.files)
        self._by_shape: dict[str, list[str]] = {}
        for path in self.files:
            self._by_shape.setdefault(shape(path), []).append(path)
        self._kind_of_shape: dict[str, FileKind | None] = {}
        self._selected: dict[tuple[str, ...], list[str]] = {}
        self._by_dir: dict[str, list[str]] | None = None
        # sha256 of each file's bytes, filled by whoever reads the file first.
        self.digests: dict[str, str] = {}

    def __contains__(self, path: object) -> bool:
        return path in self._set

    def kind(self, path: str) -> FileKind | None:
        """The first kind of the table whose patterns match ``path``."""
        key = shape(path)
        if key not in self._kind_of_shape:
            self._kind_of_shape[key] = next(
                (k for k in self._kinds if matches(key, k.patterns)), None
            )
        return self._kind_of_shape[key]

    def select(self, patterns: str | Iterable[str]) -> list[str]:
        """Files matching any of ``patterns``, sorted; each pattern list computed once."""
        pats = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        if pats not in self._selected:
            by_shape = [p for p in pats if _shape_decides(p)]
            by_path = [p for p in pats if not _shape_decides(p)]
            chosen: set[str] = set()
            for key, members in self._by_shape.items():
                if by_shape and matches(key, by_shape):
                    chosen.update(members)
                elif by_path:
                    chosen.update(m for m in members if matches(m, by_path))
            self._selected[pats] = sorted(chosen)
        return self._selected[pats]

    def glob(self, pattern: str) -> list[str]:
        """Files matching a relative glob whose wildcards are in the file name only
        (``rules/*.yml``): a look into one directory, not a scan of the tree."""
        directory, _, name = pattern.rpartition("/")
        if any(c in directory for c in "*?["):
            return sorted(
                p.relative_to(self.out).as_posix() for p in self.out.glob(pattern) if p.is_file()
            )
        if self._by_dir is None:
            self._by_dir = {}
            for path in self.files:
                d, _, n = path.rpartition("/")
                self._by_dir.setdefault(d, []).append(n)
        prefix = f"{directory}/" if directory else ""
        return [prefix + n for n in self._by_dir.get(directory, ()) if fnmatchcase(n, name)]


def _walk(out: Path) -> list[str]:
    """Every file below ``out`` (symlinks to files count; symlinked directories are not
    entered, as with ``Path.rglob``), from directory entries: no stat per file."""
    found: list[str] = []
    todo = [("", str(out))]
    while todo:
        prefix, directory = todo.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    todo.append((prefix + entry.name + "/", entry.path))
                elif entry.is_file():
                    found.append(prefix + entry.name)
    return sorted(found)
