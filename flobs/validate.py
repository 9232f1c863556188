"""`flobs validate`: run every registered check over an output tree; return, never print.

The result carries the problems, which checks ran on which files (for JUnit's one
testcase per check per file) and human notes (a tool not installed, a check skipped
for lack of an inventory). ``flobs.commands.validate`` renders it and picks the exit
code: 0 clean, 1 errors (warnings too with ``strict``), 2 bad usage or inventory,
3 a tool crashed.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import inspect
import json
import multiprocessing
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flobs import tools as toolbox
from flobs.checks import Check, CheckContext, FactSource, FileCheck, ToolMode, all_checks
from flobs.checks import kinds as k
from flobs.checks.tools import tools_needed
from flobs.errors import FlobsError, SystemFailure, ToolFailure, UsageError
from flobs.inventory import load_fleet
from flobs.model import Fleet
from flobs.problems import Problem, Severity
from flobs.tools import find_tool
from flobs.validate_cache import (
    CacheStats,
    ResultCache,
    code_digest,
    decode_problems,
    default_cache_dir,
    encode_problems,
    is_inside,
    schemas_digest,
)

# Below this many files under hosts/ the per-file pass runs in this process: starting
# workers and sending them the work costs more than a second core saves.
POOL_MIN_FILES = 3000


@dataclass(frozen=True)
class CheckRun:
    """One check, the files it looked at, or why it did not run (``skipped``)."""

    id: str
    title: str
    files: tuple[str, ...]
    skipped: str | None = None


@dataclass(frozen=True)
class DisabledCheck:
    """A check that did not run, and who turned it off (listed in every report)."""

    id: str
    by: str  # "--disable" or "manifest.json (inventory validation.disable)"


@dataclass(frozen=True)
class ValidateResult:
    out: Path
    problems: tuple[Problem, ...]
    checks: tuple[CheckRun, ...]
    notes: tuple[str, ...]
    files: int  # files in OUT
    strict: bool = False
    disabled: tuple[DisabledCheck, ...] = ()
    # Findings dropped by `validation.ignore` or a `# flobs: disable=…` comment; counted
    # in every report so nothing is hidden silently.
    suppressed: int = 0
    # What the result cache did (None with --no-cache); not part of any report, so a
    # cached and an uncached run report the same.
    cache: CacheStats | None = None
    workers: int = 1  # processes of the per-file pass

    @property
    def errors(self) -> int:
        return sum(p.severity is Severity.ERROR for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.severity is Severity.WARNING for p in self.problems)

    @property
    def failed(self) -> bool:
        return self.errors > 0 or (self.strict and self.warnings > 0)


def stats_line(result: ValidateResult) -> str:
    """``flobs validate --stats``: what the per-file pass and the cache did, exactly."""
    where = f"{result.files} files, {result.workers} process{'es' if result.workers > 1 else ''}"
    c = result.cache
    if c is None:
        return f"stats: {where}; cache off (--no-cache)"
    return (
        f"stats: {where}; cache: {c.hits} results reused, {c.misses} computed, "
        f"{c.ignored} entries ignored; pack {c.pack}{', written' if c.written else ''}"
    )


def check_files(cls: type[Check], ctx: CheckContext) -> tuple[str, ...]:
    """The files a check looks at (its ``FILES`` patterns); empty when it declares none."""
    return tuple(k.files(ctx, cls.FILES)) if cls.FILES else ()


def skip_reason(cls: type[Check], ctx: CheckContext, files: tuple[str, ...]) -> str | None:
    """Why ``cls`` cannot run on this tree, or None: reports must not call it passed."""
    if cls.NEEDS_INVENTORY and ctx.fleet is None:
        return "needs -i INVENTORY"
    if cls.TOOL is not None:
        if ctx.tools == "off":
            return f"--tools off: {cls.TOOL} was not run"
        if find_tool(cls.TOOL) is None:
            return f"{cls.TOOL} is not on PATH"
    return None


def validate(
    out: Path,
    *,
    inventory: Path | None = None,
    tools: ToolMode = "auto",
    strict: bool = False,
    disable: tuple[str, ...] = (),
    enable: tuple[str, ...] = (),
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> ValidateResult:
    """Check the tree in ``out``; with ``inventory``, the checks that compare with it too.

    Per-file results are kept in ``cache_dir`` (default ``$XDG_CACHE_HOME/flobs``) and
    reused for files whose bytes did not change, unless ``use_cache`` is false.

    Raises ``UsageError`` when ``out`` is not a directory or ``cache_dir`` is inside it,
    ``InputError`` for a bad inventory, ``ToolFailure`` when ``tools == "require"`` and a
    needed tool is missing or when a tool crashes.
    """
    if not out.is_dir():
        raise UsageError(
            f"{out} is not a directory", hint="pass the OUT directory `flobs generate -o OUT` wrote"
        )
    if use_cache and cache_dir is not None and is_inside(cache_dir, out):
        raise UsageError(
            f"--cache-dir {cache_dir} is inside OUT ({out})",
            hint="OUT holds only generated files; keep the cache elsewhere, or pass --no-cache",
        )
    fleet = load_fleet(inventory).fleet if inventory is not None else None
    ctx = CheckContext(out=out, fleet=fleet, tools=tools)
    settings = Settings.of(ctx.manifest)
    disabled = _disabled(settings, disable, enable)
    off = {d.id for d in disabled}
    checks = [c for c in all_checks() if c.ID not in off]
    if tools != "off":
        missing = [tool for tool in tools_needed(ctx) if find_tool(tool) is None]
        if missing and tools == "require":
            raise ToolFailure(
                missing, None, f"{', '.join(missing)} not on PATH and --tools require is set"
            )
        for tool in missing:
            ctx.notes.append(
                f"{tool} is not on PATH: the files it checks were validated "
                "without it (--tools require makes this an error)"
            )
    if fleet is None:
        skipped = [c.ID for c in checks if c.NEEDS_INVENTORY]
        if skipped:
            ctx.notes.append(
                f"without -i INVENTORY these checks were skipped: {', '.join(skipped)}"
            )
    if use_cache:
        directory = cache_dir if cache_dir is not None else default_cache_dir()
        if is_inside(directory, out):
            ctx.notes.append(f"the cache directory {directory} is inside OUT: not used")
        else:
            ctx.cache = ResultCache.open(directory, out, _contexts(checks, fleet))
    found: set[Problem] = set()
    with _collector_paused():
        ran, workers = _run_all(ctx, checks, found)
    if ctx.cache is not None:
        stats = ctx.cache.stats
        if stats.misses or stats.ignored or stats.pack != "loaded":
            try:
                ctx.cache.save(set(ctx.files))
            except OSError as err:
                ctx.notes.append(f"the validate cache was not written ({ctx.cache.path}: {err})")
    kept = [p for p in found if not settings.suppresses(p, ctx)]
    problems = sorted(kept, key=_order)
    return ValidateResult(
        out,
        tuple(problems),
        tuple(ran),
        tuple(ctx.notes),
        len(ctx.files),
        strict,
        tuple(disabled),
        len(found) - len(kept),
        ctx.cache.stats if ctx.cache is not None else None,
        workers,
    )


def _disabled(
    settings: Settings, disable: tuple[str, ...], enable: tuple[str, ...]
) -> list[DisabledCheck]:
    known = {c.ID for c in all_checks()}
    unknown = sorted({*disable, *enable} - known)
    if unknown:
        raise UsageError(
            f"no check has id {', '.join(map(repr, unknown))}",
            hint="`flobs validate --list-checks` lists the check ids",
        )
    out: dict[str, DisabledCheck] = {}
    for check_id in settings.disable:
        if check_id in known:  # an id from a newer flobs is not an error here
            out[check_id] = DisabledCheck(check_id, "manifest.json (inventory validation.disable)")
    for check_id in disable:
        out[check_id] = DisabledCheck(check_id, "--disable")
    for check_id in enable:
        out.pop(check_id, None)
    return [out[k] for k in sorted(out)]


# `# flobs: disable=ID[,ID]` at the end of a line (that line) or alone on a line (the next
# line); `# flobs: disable-file=ID[,ID]` anywhere (the whole file). Only in the files the
# user owns (manifest `user_files`): flobs' own files have no business being tuned inline.
_INLINE = re.compile(r"#\s*flobs:\s*(disable|disable-file)=([A-Za-z0-9_,.-]+)")


@dataclass(frozen=True)
class _Inline:
    file_wide: frozenset[str]
    by_line: dict[int, frozenset[str]]


@dataclass
class Settings:
    """The validation settings a tree carries (manifest.json ``validation``)."""

    disable: tuple[str, ...] = ()
    ignore: tuple[tuple[str, frozenset[str]], ...] = ()
    user_files: frozenset[str] = frozenset()
    _inline: dict[str, _Inline] = field(default_factory=dict)

    @classmethod
    def of(cls, manifest: dict[str, Any] | None) -> Settings:
        doc = manifest or {}
        v = doc.get("validation")
        v = v if isinstance(v, dict) else {}
        ignore = tuple(
            (str(r["path"]), frozenset(map(str, r.get("checks") or ())))
            for r in v.get("ignore") or ()
            if isinstance(r, dict) and isinstance(r.get("path"), str)
        )
        users = doc.get("user_files")
        return cls(
            tuple(map(str, v.get("disable") or ())),
            ignore,
            frozenset(users) if isinstance(users, dict) else frozenset(),
        )

    def suppresses(self, p: Problem, ctx: CheckContext) -> bool:
        if p.file is None:
            return False
        for pattern, checks in self.ignore:
            if (not checks or p.check_id in checks) and k.matches(p.file, pattern):
                return True
        if p.file in self.user_files and p.file.endswith((".yml", ".yaml")):
            inline = self._inline_of(ctx, p.file)
            if p.check_id in inline.file_wide:
                return True
            if p.line is not None and p.check_id in inline.by_line.get(p.line, frozenset()):
                return True
        return False

    def _inline_of(self, ctx: CheckContext, path: str) -> _Inline:
        if path not in self._inline:
            try:
                lines = (ctx.out / path).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                lines = []
            file_wide: set[str] = set()
            by_line: dict[int, set[str]] = {}
            pending: set[str] = set()  # from comment lines, for the next line of YAML
            for n, line in enumerate(lines, 1):
                standalone = line.lstrip().startswith("#") or not line.strip()
                if not standalone and pending:
                    by_line.setdefault(n, set()).update(pending)
                    pending = set()
                for m in _INLINE.finditer(line):
                    ids = set(filter(None, m.group(2).split(",")))
                    if m.group(1) == "disable-file":
                        file_wide |= ids
                    elif standalone:
                        pending |= ids
                    else:
                        by_line.setdefault(n, set()).update(ids)
            self._inline[path] = _Inline(
                frozenset(file_wide), {n: frozenset(v) for n, v in by_line.items()}
            )
        return self._inline[path]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Parsed files are millions of small acyclic objects: Python's cyclic GC rescans them
    again and again (half the run time at 1,000 hosts, measured) and frees nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_all(
    ctx: CheckContext, checks: list[type[Check]], found: set[Problem]
) -> tuple[list[CheckRun], int]:
    ran: list[CheckRun] = []
    runnable: list[type[Check]] = []
    for cls in checks:
        files = check_files(cls, ctx)
        reason = skip_reason(cls, ctx, files)
        if reason is not None:
            ran.append(CheckRun(cls.ID, cls.TITLE, (), reason))
        else:
            ran.append(CheckRun(cls.ID, cls.TITLE, files))
            runnable.append(cls)
    file_checks = [c for c in runnable if issubclass(c, FileCheck)]
    sources = sorted({s for c in runnable for s in c.FACTS}, key=lambda s: s.ID)
    workers = _per_file_pass(ctx, file_checks, sources, found)
    for cls in runnable:
        if issubclass(cls, FileCheck):
            continue
        try:
            found.update(cls().check(ctx))
        except FlobsError:
            raise
        except Exception as err:  # a bug in a check must not pass for a clean tree
            raise _crashed(cls.ID, f"{type(err).__name__}: {err}") from err
    return ran, workers


def _crashed(check_id: str, what: str) -> SystemFailure:
    return SystemFailure(
        f"check {check_id} crashed: {what}",
        hint="rerun with --traceback and report it",
    )


# --------------------------------------------------------------------------- per-file pass
#
# Every file is read once and hashed; the per-file checks and fact sources that apply
# to it run on its one parse, or their results come from the cache. Files under hosts/
# (the bulk of a large fleet) go to a pool of processes when there are many; each
# worker returns only problems, facts and digests. Everything else (central, grafana,
# manifest) is handled here, so the tree checks find those files parsed already.


class _CheckCrashed(Exception):
    """A per-file check raised in a worker: (check id, what it raised)."""


@dataclass
class _Outcome:
    path: str
    sha: str | None
    problems: list[Problem]
    facts: dict[str, Any]
    store: dict[str, Any]  # id → rows or [fact], to cache
    hits: int = 0
    misses: int = 0
    ignored: int = 0


Runner = type[FileCheck] | type[FactSource]
# Set before the pool forks: workers inherit the context, the checks and the cache.
_STATE: tuple[CheckContext, dict[str, Runner]] | None = None


def _per_file_pass(
    ctx: CheckContext,
    file_checks: Sequence[type[FileCheck]],
    sources: Sequence[type[FactSource]],
    found: set[Problem],
) -> int:
    global _STATE
    runners: dict[str, Runner] = {c.ID: c for c in file_checks}
    runners.update({s.ID: s for s in sources})
    applies = {rid: set(ctx.index.select(r.FILES)) for rid, r in runners.items()}
    plan = [(path, tuple(rid for rid in runners if path in applies[rid])) for path in ctx.files]
    here = [item for item in plan if not item[0].startswith("hosts/")]
    hosts = [item for item in plan if item[0].startswith("hosts/")]
    workers = _worker_count() if len(hosts) >= POOL_MIN_FILES else 1
    outcomes: list[_Outcome] = []
    try:
        if workers > 1:
            size = max(100, -(-len(hosts) // (workers * 4)))
            chunks = [hosts[i : i + size] for i in range(0, len(hosts), size)]
            _STATE = (ctx, runners)  # read by the forked workers only
            try:
                fork = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(workers, mp_context=fork) as pool:
                    pending = [pool.submit(_pooled, chunk) for chunk in chunks]
                    # Meanwhile the centre's files, parsed here for the tree checks.
                    outcomes += [_one_file(ctx, runners, *item) for item in here]
                    outcomes += [o for fut in pending for o in _result(fut)]
            finally:
                _STATE = None
        else:
            outcomes += [_one_file(ctx, runners, *item) for item in plan]
    except _CheckCrashed as err:
        raise _crashed(*err.args) from err
    for o in outcomes:
        found.update(o.problems)
        if o.sha is not None:
            ctx.index.digests[o.path] = o.sha
        for rid, value in o.facts.items():
            ctx._memo[(rid, o.path)] = value
        if ctx.cache is not None:
            ctx.cache.stats.hits += o.hits
            ctx.cache.stats.misses += o.misses
            ctx.cache.stats.ignored += o.ignored
            if o.sha is not None and o.store:
                ctx.cache.store(o.path, o.sha, o.store)
    return workers


def _result(fut: Any) -> list[_Outcome]:
    out: list[_Outcome] = fut.result()
    return out


def _worker_count() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _pooled(items: list[tuple[str, tuple[str, ...]]]) -> list[_Outcome]:
    """A worker's share: the context and checks come with the fork, not the pickle."""
    assert _STATE is not None
    ctx, runners = _STATE
    return [_one_file(ctx, runners, path, ids) for path, ids in items]


def _one_file(
    ctx: CheckContext, runners: dict[str, Runner], path: str, ids: tuple[str, ...]
) -> _Outcome:
    try:
        data: bytes | None = ctx.read(path)
    except OSError:
        data = None  # the checks say what is wrong with it (file-parses, manifest-*)
    sha = ctx.index.digests.get(path) if data is not None else None
    outcome = _Outcome(path, sha, [], {}, {})
    if not ids:
        return outcome
    hits = _usable_hits(ctx, runners, path, sha, ids, outcome)
    for rid in ids:
        runner = runners[rid]
        if rid in hits:
            outcome.hits += 1
            if issubclass(runner, FactSource):
                outcome.facts[rid] = hits[rid]
            else:
                outcome.problems.extend(hits[rid])
            continue
        outcome.misses += 1
        if data is not None and path.endswith((".yml", ".yaml", ".json")):
            ctx.parse(path, data)  # once, for every check of this file
        try:
            if issubclass(runner, FactSource):
                value = runner().extract(ctx, path)
                outcome.facts[rid] = value
                outcome.store[rid] = [value]
            else:
                problems = list(runner().check_file(ctx, path))
                outcome.problems.extend(problems)
                outcome.store[rid] = encode_problems(problems)
        except FlobsError:
            raise
        except Exception as err:  # a bug in a check must not pass for a clean tree
            # Picklable (it may cross from a worker): the check and what it raised.
            raise _CheckCrashed(rid, f"{type(err).__name__}: {err}") from err
    if path.startswith("hosts/"):
        # No tree check reads a host's files (they read its facts), and 10,000 hosts'
        # parsed files would not fit the memory budget.
        ctx.release(path)
    return outcome


def _usable_hits(
    ctx: CheckContext,
    runners: dict[str, Runner],
    path: str,
    sha: str | None,
    ids: tuple[str, ...],
    outcome: _Outcome,
) -> dict[str, Any]:
    """The cached results for this file: problems or facts by id. An entry malformed
    anywhere is not trusted at all (counted in ``outcome.ignored``)."""
    if ctx.cache is None or sha is None:
        return {}
    cached, malformed = ctx.cache.lookup(path, sha)
    hits: dict[str, Any] = {}
    for rid in ids:
        hit = cached.get(rid)
        if hit is None or malformed:
            continue
        if issubclass(runners[rid], FactSource):
            malformed = not (isinstance(hit, list) and len(hit) == 1)
            value = hit[0] if not malformed else None
        else:
            value = decode_problems(hit, rid, path)
            malformed = value is None
        hits[rid] = value
    if malformed:
        outcome.ignored = 1
        return {}
    return hits


def _contexts(checks: Sequence[type[Check]], fleet: Fleet | None) -> dict[str, str]:
    """Per check (and fact source): the digest of everything besides the file its
    per-file results depend on (see flobs.validate_cache)."""
    base = code_digest() + schemas_digest()
    inventory = _fleet_digest(fleet)
    out: dict[str, str] = {}
    runners: list[type[Check] | type[FactSource]] = [*checks]
    runners += sorted({s for c in checks for s in c.FACTS}, key=lambda s: s.ID)
    for r in runners:
        parts = [base, r.ID]
        if isinstance(r, type) and issubclass(r, Check):
            if r.USES_INVENTORY:
                parts.append(inventory)
            if r.TOOL is not None:
                parts.append(_tool_identity(r.TOOL))
        out[r.ID] = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return out


def _fleet_digest(fleet: Fleet | None) -> str:
    """The inventory as flobs understood it (extensions and group merges included),
    not only the bytes of its file."""
    if fleet is None:
        return "no inventory"
    return hashlib.sha256(repr(fleet).encode()).hexdigest()


def _tool_identity(tool: str) -> str:
    """Which binaries would run, with their version, size and mtime: a rebuilt or
    upgraded tool gets its results computed again."""
    paths = list(toolbox.promtools().values()) if tool == "promtool" else []
    paths += toolbox.find_all(tool)
    described = []
    for path in dict.fromkeys(paths):
        try:
            st = os.stat(path)
            described.append([path, toolbox.tool_version(path), st.st_size, st.st_mtime_ns])
        except OSError:
            described.append([path, None, None, None])
    return json.dumps(described)


def _order(p: Problem) -> tuple[str, int, int, str, str]:
    return (p.file or "", p.line or 0, p.col or 0, p.check_id, p.message)


def check_doc(cls: type[Check]) -> tuple[str, str]:
    """(first line, the rest) of a check's docstring: its user documentation."""
    doc = inspect.cleandoc(cls.__doc__ or cls.TITLE)
    head, _, rest = doc.partition("\n")
    return head.strip(), " ".join(rest.split())


def checks_markdown() -> str:
    """A Markdown table of every registered check (id, what, why), for the README."""
    rows = ["| check | severity | what | why (and an example) |", "|---|---|---|---|"]
    for cls in all_checks():
        what, why = check_doc(cls)
        needs = " Needs `-i INVENTORY`." if cls.NEEDS_INVENTORY else ""
        cells = [f"`{cls.ID}`", cls.SEVERITY.value, what, why.removeprefix("Why: ") + needs]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def checks_text() -> str:
    """``flobs validate --list-checks``: every check with what, why and an example."""
    blocks = []
    for cls in all_checks():
        what, why = check_doc(cls)
        needs = " (needs -i INVENTORY)" if cls.NEEDS_INVENTORY else ""
        blocks.append(f"{cls.ID} [{cls.SEVERITY.value}]{needs}\n  {what}\n  {why}")
    return "\n\n".join(blocks) + "\n"
