"""Problem records: what the core returns instead of printing.

Every finding, whether an inventory error or a validation result, is a
``Problem``. Reporters (``flobs.report``) render them; the core never prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, order=True)
class Problem:
    """One finding, located as precisely as we know.

    ``file`` is shown as given (relative paths stay relative); ``line`` and ``col``
    are 1-based. ``key_path`` is a JSONPath-like ``$.hosts[2].vars.scrape_interval``.
    """

    file: str | None
    line: int | None
    col: int | None
    check_id: str
    severity: Severity
    message: str
    hint: str | None = field(default=None, compare=False)
    key_path: str | None = None

    @property
    def location(self) -> str:
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def render(self) -> str:
        """``file:line:col: $.key.path: message`` and an indented hint line."""
        head = f"{self.location}: "
        if self.key_path:
            head += f"{self.key_path}: "
        text = f"{head}{self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.ERROR]
