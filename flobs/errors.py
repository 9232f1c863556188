"""The exception hierarchy and the exit codes every command shares.

Library code raises; only ``flobs.cli`` turns an exception into a message and an
exit code. Constructors have no side effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING

from flobs.redact import redact

if TYPE_CHECKING:
    from flobs.problems import Problem


class ExitCode(IntEnum):
    """Exit codes, identical for every command (see README)."""

    OK = 0
    FINDINGS = 1  # drift, invalid output, failed verification, conflicts
    BAD_INPUT = 2  # bad inventory, bad usage
    REMOTE = 3  # remote or system failure: Grafana/Prometheus unreachable, tool crashed
    INTERRUPTED = 130


class FlobsError(Exception):
    """Base of every error flobs raises on purpose. Shown without a traceback."""

    exit_code: ExitCode = ExitCode.REMOTE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # The choke point for every error text: no secret survives into a message.
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.hint = None if hint is None else redact(hint)


class InputError(FlobsError):
    """The user's input is wrong: one or more problems, each with a position."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: Sequence[Problem], message: str | None = None) -> None:
        count = len(problems)
        super().__init__(message or f"{count} problem{'s' if count != 1 else ''} in the input")
        self.problems = tuple(problems)


class UsageError(FlobsError):
    """A command was called with options that do not fit together."""

    exit_code = ExitCode.BAD_INPUT


class RemoteError(FlobsError):
    """A remote service (Grafana, Prometheus) failed or refused us."""

    exit_code = ExitCode.REMOTE


class SystemFailure(FlobsError):
    """The local system failed us: a tool crashed, a port could not be bound, a disk is full."""

    exit_code = ExitCode.REMOTE


class ToolFailure(SystemFailure):
    """An external tool could not run or crashed (as opposed to reporting findings)."""

    def __init__(self, command: Sequence[str], returncode: int | None, output: str) -> None:
        shown = " ".join(command)
        status = "could not be started" if returncode is None else f"exited {returncode}"
        super().__init__(f"`{shown}` {status}:\n{output.rstrip()}")
        self.command = tuple(command)
        self.returncode = returncode
        self.output = output
