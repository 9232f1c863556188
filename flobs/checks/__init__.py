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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

from flobs import yamlio
from flobs.model import Fleet
from flobs.problems import Problem, Severity

ToolMode = Literal["auto", "require", "off"]

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
    _parsed: dict[str, Parsed] = field(default_factory=dict)
    _bodies: dict[tuple[int, bytes], Parsed] = field(default_factory=dict)

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        from flobs.output import read_manifest

        return read_manifest(self.out)

    @cached_property
    def files(self) -> list[str]:
        """Every file under OUT (posix, relative), sorted; manifest.json included."""
        return sorted(
            p.relative_to(self.out).as_posix() for p in self.out.rglob("*") if p.is_file()
        )

    def glob(self, pattern: str) -> list[str]:
        return sorted(
            p.relative_to(self.out).as_posix() for p in self.out.glob(pattern) if p.is_file()
        )

    def parse(self, path: str) -> Parsed:
        """Parse ``path`` (YAML or JSON) once; errors are recorded, not raised."""
        if path not in self._parsed:
            try:
                # Inside the try: a non-UTF-8 file is a finding, not a crash of every check.
                text = (self.out / path).read_text(encoding="utf-8")
                if path.endswith(".json"):
                    self._parsed[path] = Parsed(path, yamlio.load_json(text), None)
                else:
                    # Hosts' rules and exporter files differ only in their header comment:
                    # parse each distinct body once (same header length ⇒ same positions).
                    # The data is shared, so checks must treat it as read-only.
                    key = _body_key(text)
                    shared = self._bodies.get(key)
                    if shared is None:
                        shared = self._bodies[key] = Parsed(
                            path, yamlio.load(text), None, text=text
                        )
                    # Same body ⇒ same positions: share the lazily computed ones.
                    self._parsed[path] = (
                        shared
                        if shared.path == path
                        else Parsed(path, shared.data, None, text=shared.text)
                    )
            except yamlio.YamlSyntaxError as err:
                self._parsed[path] = Parsed(path, None, None, err.message, err.mark)
            except (ValueError, OSError) as err:
                self._parsed[path] = Parsed(path, None, None, str(err))
        return self._parsed[path]

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
            parsed = self._parsed.get(path)
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
    # The external tool it runs, if any: skipped (with the reason) when it cannot run.
    TOOL: ClassVar[str | None] = None

    def check(self, ctx: CheckContext) -> Iterable[Problem]:
        raise NotImplementedError


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
