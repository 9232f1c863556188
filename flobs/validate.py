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
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flobs.checks import Check, CheckContext, ToolMode, all_checks
from flobs.checks import kinds as k
from flobs.checks.tools import tools_needed
from flobs.errors import FlobsError, SystemFailure, ToolFailure, UsageError
from flobs.inventory import load_fleet
from flobs.problems import Problem, Severity
from flobs.tools import find_tool


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

    @property
    def errors(self) -> int:
        return sum(p.severity is Severity.ERROR for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.severity is Severity.WARNING for p in self.problems)

    @property
    def failed(self) -> bool:
        return self.errors > 0 or (self.strict and self.warnings > 0)


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
) -> ValidateResult:
    """Check the tree in ``out``; with ``inventory``, the checks that compare with it too.

    Raises ``UsageError`` when ``out`` is not a directory, ``InputError`` for a bad
    inventory, ``ToolFailure`` when ``tools == "require"`` and a needed tool is missing
    or when a tool crashes.
    """
    if not out.is_dir():
        raise UsageError(
            f"{out} is not a directory", hint="pass the OUT directory `flobs generate -o OUT` wrote"
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
    found: set[Problem] = set()
    with _collector_paused():
        ran = _run_all(ctx, checks, found)
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


def _run_all(ctx: CheckContext, checks: list[type[Check]], found: set[Problem]) -> list[CheckRun]:
    ran: list[CheckRun] = []
    for cls in checks:
        files = check_files(cls, ctx)
        reason = skip_reason(cls, ctx, files)
        if reason is not None:
            ran.append(CheckRun(cls.ID, cls.TITLE, (), reason))
            continue
        try:
            found.update(cls().check(ctx))
        except FlobsError:
            raise
        except Exception as err:  # a bug in a check must not pass for a clean tree
            raise SystemFailure(
                f"check {cls.ID} crashed: {type(err).__name__}: {err}",
                hint="rerun with --traceback and report it",
            ) from err
        ran.append(CheckRun(cls.ID, cls.TITLE, files))
    return ran


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
