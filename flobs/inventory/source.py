"""Turning document paths into located problems."""

from __future__ import annotations

from dataclasses import dataclass

from flobs.problems import Problem, Severity
from flobs.yamlio import Positions, format_path

DocPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    name: str  # the file as the user named it
    positions: Positions

    def problem(
        self,
        path: DocPath,
        message: str,
        hint: str | None = None,
        *,
        check_id: str = "inventory",
        severity: Severity = Severity.ERROR,
        at_key: bool = False,
    ) -> Problem:
        mark = self.positions.key_of(path) if at_key else self.positions.of(path)
        return Problem(
            self.name,
            mark.line if mark else None,
            mark.col if mark else None,
            check_id,
            severity,
            message,
            hint,
            format_path(path),
        )
