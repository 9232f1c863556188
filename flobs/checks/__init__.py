"""Validation checks: plugins in a registry.

Each check is a class with ``ID`` (stable, e.g. ``prom-job-unique``), ``TITLE``, a
docstring that is its user documentation (what, why, an example; shown by
``flobs validate --list-checks``), ``SEVERITY`` and ``check(ctx)`` yielding
``Problem`` records. Checks never print and never raise for findings.

Add a check by writing a class in a module of this package, decorating it with
``@register``, and listing the module in ``CHECK_MODULES``.
"""

from __future__ import annotations

import hashlib
import importlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from flobs import yamlio
from flobs.checks.index import TreeIndex
from flobs.model import Fleet
from flobs.problems import Problem, Severity

if TYPE_CHECKING:
    from flobs.validate_cache import ResultCache

ToolMode = Literal["auto", "require", "off"]

MAX_BODIES = 64  # distinct YAML bodies kept by CheckContext.parse

# Modules holding checks; imported lazily by `all_checks()`.
CHECK_MODULES: list[str] = [
    "structure",
    "prometheus",
    "promql_exprs",
    "dashboards",
    "crossref",
    "tools",
    "logs",
    "otelcol",
    "alerting",
]


@dataclass
class Parsed:
    """A generated file parsed once and shared by every check.

    Positions are computed on first use: only files with a finding need them, and
    tracking them doubles the cost of parsing 10,000 hosts' files.
    """

    path: str  # relative to OUT, posix
    data: Any
    _positions: yamlio.Positions | None
    error: str | None = None  # set when the file does not parse
    error_mark: yamlio.Mark | None = None  # where it stops parsing, when known
    text: str | None = field(default=None, repr=False)  # YAML source, for lazy positions
    # What the content is, for results derived from it alone (schema errors): the body
    # after the header comment for YAML; the path for JSON and files that do not parse.
    identity: str = ""

    @property
    def positions(self) -> yamlio.Positions | None:
        if self._positions is None and self.text is not None and self.error is None:
            self._positions = yamlio.load_with_positions(self.text)[1]
        return self._positions


@dataclass
class CheckContext:
    out: Path
    fleet: Fleet | None  # present when validate got -i INVENTORY
    tools: ToolMode = "auto"
    # Human notes from checks (a tool not on PATH under `--tools auto`, a check skipped);
    # `flobs validate` shows them on stderr, never as findings.
    notes: list[str] = field(default_factory=list)
    # Per-file results kept between runs (flobs.validate_cache); None: compute everything.
    cache: ResultCache | None = None
    _parsed: dict[str, Parsed] = field(default_factory=dict)
    # The last distinct YAML bodies parsed: hosts' rules and exporter files repeat one
    # body with another header, and are parsed once; a body seen once is let go.
    _bodies: OrderedDict[tuple[int, bytes], Parsed] = field(default_factory=OrderedDict)
    _memo: dict[tuple[str, str], Any] = field(default_factory=dict)

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        from flobs.output import read_manifest

        return read_manifest(self.out)

    @cached_property
    def index(self) -> TreeIndex:
        """Every file of OUT, walked once and classified by ``kinds.KINDS``."""
        from flobs.checks.kinds import KINDS

        return TreeIndex(self.out, KINDS)

    @property
    def files(self) -> list[str]:
        """Every file under OUT (posix, relative), sorted; manifest.json included."""
        return self.index.files

    def glob(self, pattern: str) -> list[str]:
        return self.index.select((pattern,))

    def read(self, path: str) -> bytes:
        """The bytes of ``path``; its sha256 is kept so nobody needs to read it again
        to hash it (manifest-hash, the result cache)."""
        data = (self.out / path).read_bytes()
        self.index.digests[path] = hashlib.sha256(data).hexdigest()
        return data

    def digest(self, path: str) -> str:
        """sha256 (hex) of ``path``'s bytes; raises OSError when it cannot be read."""
        known = self.index.digests.get(path)
        return known if known is not None else hashlib.sha256(self.read(path)).hexdigest()

    def memo(self, what: str, path: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per run for (what, path): a derived form of a parsed file."""
        key = (what, path)
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def cached_per_file(
        self,
        check: type[Check] | Check,
        paths: Sequence[str],
        run: Callable[[list[str]], Iterable[Problem]],
    ) -> list[Problem]:
        """Problems of a check whose findings about a file depend on that file alone (a
        tool run over many files at once): cached ones for unchanged files, ``run`` over
        the others. Without a cache, ``run`` over all of them."""
        if self.cache is None:
            return list(run(list(paths)))
        from flobs.validate_cache import decode_problems, encode_problems

        found: list[Problem] = []
        todo: list[str] = []
        shas: dict[str, str] = {}
        for path in paths:
            try:
                shas[path] = self.digest(path)
            except OSError:
                todo.append(path)  # the tool says what is wrong with it
                continue
            cached, malformed = self.cache.lookup(path, shas[path])
            self.cache.stats.ignored += int(malformed)
            hit = cached.get(check.ID)
            problems = decode_problems(hit, check.ID, path) if hit is not None else None
            if problems is None:
                self.cache.stats.ignored += int(hit is not None)  # malformed rows
                todo.append(path)
            else:
                self.cache.stats.hits += 1
                found.extend(problems)
        if todo:
            fresh = list(run(todo))
            by_file: dict[str | None, list[Problem]] = {}
            for p in fresh:
                by_file.setdefault(p.file, []).append(p)
            for path in todo:
                self.cache.stats.misses += 1
                if path in shas:
                    rows = encode_problems(by_file.get(path, []))
                    self.cache.store(path, shas[path], {check.ID: rows})
            found.extend(fresh)
        return found

    def cached_tree(
        self,
        check: type[Check] | Check,
        inputs: Sequence[str],
        run: Callable[[], Iterable[Problem]],
    ) -> list[Problem]:
        """Problems of a check whose verdict depends on several files (``inputs``): the
        cached ones while none of those files changed, else ``run()``."""
        if self.cache is None:
            return list(run())
        h = hashlib.sha256()
        for path in sorted(inputs):
            try:
                h.update(f"{path}\0{self.digest(path)}\0".encode())
            except OSError:
                h.update(f"{path}\0unreadable\0".encode())
        digest = h.hexdigest()
        cached = self.cache.lookup_tree(check.ID, digest)
        if cached is not None:
            self.cache.stats.hits += 1
            return cached
        self.cache.stats.misses += 1
        found = list(run())
        self.cache.store_tree(check.ID, digest, found)
        return found

    def parse(self, path: str, data: bytes | None = None) -> Parsed:
        """Parse ``path`` (YAML or JSON) once; errors are recorded, not raised.

        ``data`` is the file's bytes when the caller has read them already.
        """
        if path not in self._parsed:
            try:
                # Inside the try: a non-UTF-8 file is a finding, not a crash of every check.
                text = (data if data is not None else self.read(path)).decode("utf-8")
                if path.endswith(".json"):
                    data = yamlio.load_json(text)
                    self._parsed[path] = Parsed(path, data, None, identity=f"path:{path}")
                else:
                    # Same body ⇒ same data and same positions (same header length):
                    # parse each distinct body once. The data is shared, so checks must
                    # treat it as read-only.
                    key = _body_key(text)
                    shared = self._bodies.get(key)
                    if shared is None:
                        identity = f"body:{key[0]}:{key[1].hex()}"
                        shared = Parsed(path, yamlio.load(text), None, text=text, identity=identity)
                        self._bodies[key] = shared
                        if len(self._bodies) > MAX_BODIES:
                            self._bodies.popitem(last=False)
                    else:
                        self._bodies.move_to_end(key)
                    # Same body ⇒ same positions: share the lazily computed ones.
                    self._parsed[path] = (
                        shared
                        if shared.path == path
                        else Parsed(
                            path, shared.data, None, text=shared.text, identity=shared.identity
                        )
                    )
            except yamlio.YamlSyntaxError as err:
                self._parsed[path] = Parsed(
                    path, None, None, err.message, err.mark, identity=f"path:{path}"
                )
            except (ValueError, OSError) as err:
                self._parsed[path] = Parsed(path, None, None, str(err), identity=f"path:{path}")
        return self._parsed[path]

    def release(self, path: str) -> None:
        """Forget ``path``'s parse and what was derived from it: 10,000 hosts' parsed
        files do not fit in the memory budget. Parsed again if a check asks later."""
        self._parsed.pop(path, None)
        self._memo.pop(("alloy", path), None)  # facts stay: tree checks read them

    def problem(
        self,
        check: type[Check] | Check,
        path: str | None,
        message: str,
        *,
        hint: str | None = None,
        key_path: yamlio.Path_ = (),
        severity: Severity | None = None,
        line: int | None = None,
        col: int | None = None,
    ) -> Problem:
        """A Problem located at ``key_path`` inside ``path`` when its position is known."""
        if path is not None and line is None and key_path:
            # A file the per-file pass handled elsewhere (a worker, the cache) is parsed
            # here for its positions: only files with a finding pay for that.
            parsed = self._parsed.get(path)
            if parsed is None and path in self.index:
                parsed = self.parse(path)
            mark = parsed.positions.of(key_path) if parsed and parsed.positions else None
            if mark:
                line, col = mark.line, mark.col
        return Problem(
            path,
            line,
            col,
            check.ID,
            severity or check.SEVERITY,
            message,
            hint,
            yamlio.format_path(key_path) if key_path else None,
        )


def _body_key(text: str) -> tuple[int, bytes]:
    """(header line count, digest of the text after the leading comment lines)."""
    header = 0
    start = 0
    while text.startswith("#", start):
        end = text.find("\n", start)
        if end < 0:
            break
        header += 1
        start = end + 1
    return header, hashlib.blake2b(text[start:].encode("utf-8"), digest_size=20).digest()


class Check:
    ID: ClassVar[str]
    TITLE: ClassVar[str]
    SEVERITY: ClassVar[Severity] = Severity.ERROR
    NEEDS_INVENTORY: ClassVar[bool] = False  # skipped (noted) without -i INVENTORY
    # The files the check reads (kinds patterns): the count reports give, and a check
    # with no such file in OUT is reported skipped rather than passed.
    FILES: ClassVar[tuple[str, ...]] = ()
    # What it needs from each file of the per-file pass (tree checks only).
    FACTS: ClassVar[tuple[type[FactSource], ...]] = ()
    # The external tool it runs, if any: skipped (with the reason) when it cannot run.
    TOOL: ClassVar[str | None] = None
    # Reads ctx.fleet (directly or through the host's inventory entry): results kept
    # between runs are keyed by the inventory's sha256 too.
    USES_INVENTORY: ClassVar[bool] = False

    def check(self, ctx: CheckContext) -> Iterable[Problem]:
        raise NotImplementedError


class FileCheck(Check):
    """A check of one file at a time: its problems are a pure function of that file's
    bytes, plus the inventory when ``USES_INVENTORY`` (and the tool, for tool checks).

    ``flobs validate`` runs ``check_file`` once per file of ``FILES`` in its per-file
    pass (in a process pool for large trees) and caches the problems by the file's
    sha256. Problems are about ``path`` only; a check that needs other files too is a
    tree check (plain ``Check``), fed by per-file facts where it needs host files.
    """

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        for path in ctx.index.select(self.FILES):
            yield from self.check_file(ctx, path)

    def check_file(self, ctx: CheckContext, path: str) -> Iterable[Problem]:
        raise NotImplementedError


class FactSource:
    """What a tree check needs from one file, as JSON data: extracted in the per-file
    pass (and cached by sha256 like a per-file check) so the tree check never parses
    the 10,000 host files again. ``ID`` names it in the cache."""

    ID: ClassVar[str]
    FILES: ClassVar[tuple[str, ...]]

    def extract(self, ctx: CheckContext, path: str) -> Any:
        raise NotImplementedError


def fact(ctx: CheckContext, source: type[FactSource], path: str) -> Any:
    """The fact ``source`` gives for ``path``: from the per-file pass, else extracted now."""
    return ctx.memo(source.ID, path, lambda: source().extract(ctx, path))


_REGISTRY: dict[str, type[Check]] = {}


def register(cls: type[Check]) -> type[Check]:
    if cls.ID in _REGISTRY and _REGISTRY[cls.ID] is not cls:
        raise RuntimeError(f"duplicate check id {cls.ID}")
    _REGISTRY[cls.ID] = cls
    return cls


def all_checks() -> list[type[Check]]:
    for module in CHECK_MODULES:
        importlib.import_module(f"flobs.checks.{module}")
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def run_checks(
    ctx: CheckContext, selected: Callable[[type[Check]], bool] | None = None
) -> Iterator[Problem]:
    for cls in all_checks():
        if selected and not selected(cls):
            continue
        if cls.NEEDS_INVENTORY and ctx.fleet is None:
            continue
        yield from cls().check(ctx)
