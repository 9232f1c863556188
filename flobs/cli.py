"""The command line: thin. Each command parses options, calls one core function,
and maps its result to an exit code. Every error is mapped here, in one place.

Exit codes (all commands): 0 ok · 1 findings · 2 bad input or usage ·
3 remote or system failure · 130 interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from flobs import __version__, httpio
from flobs.errors import ExitCode, FlobsError, InputError, ToolFailure
from flobs.redact import install_log_redaction, redacting, register_url

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="flobs",
    help="Observability provisioner for Flintlock fleets: one host inventory in, a validated "
    "Prometheus / Loki / OpenTelemetry / Grafana stack out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Diagnostics go to stderr; stdout carries only what a command produces (JSON, reports).
# Both write through the redaction layer: no secret reaches a terminal or a CI log.
err_console = Console(file=redacting("stderr"), stderr=True, highlight=False, soft_wrap=True)
out_console = Console(file=redacting("stdout"), highlight=False, soft_wrap=True)

_show_traceback = False


def _version(value: bool) -> None:
    if value:
        out_console.print(f"flobs {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    traceback: bool = typer.Option(
        False, "--traceback", help="Show the Python traceback of an error (for bug reports)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    deadline: float = typer.Option(
        httpio.DEFAULT_COMMAND_DEADLINE,
        "--deadline",
        envvar="FLOBS_DEADLINE",
        min=1,
        max=86400,
        metavar="SECONDS",
        help="The most a command may spend on HTTP requests (Grafana, Prometheus) in total.",
    ),
) -> None:
    global _show_traceback
    _show_traceback = traceback or bool(os.environ.get("FLOBS_TRACEBACK"))
    install_log_redaction()
    for arg in sys.argv[1:]:
        # A URL with credentials is refused, but the refusal must not show them either.
        register_url(arg.split("=", 1)[-1])
    httpio.start_command_deadline(deadline)
    ctx.call_on_close(httpio.clear_command_deadline)


class ProgressBar:
    """A progress bar on stderr that appears only on a terminal and for big jobs.

    Pass the instance as the core's ``progress(done, total)`` callback; use it as a
    context manager so the bar is always removed, even on error or Ctrl-C.
    """

    def __init__(self, description: str, *, enabled: bool, minimum: int) -> None:
        self.description = description
        self.enabled = enabled and sys.stderr.isatty()
        self.minimum = minimum
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < self.minimum:
            return
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=total)
        self._bar.update(self._task, completed=done)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._bar.stop()


def report_error(error: FlobsError) -> None:
    """Render an error for people: located problems, or message + hint."""
    if isinstance(error, InputError):
        for problem in error.problems:
            err_console.print(problem.render(), markup=False)
        err_console.print(f"error: {error.message}; nothing was written", markup=False)
        return
    err_console.print(f"error: {error.message}", markup=False)
    if error.hint:
        err_console.print(f"    hint: {error.hint}", markup=False)
    if isinstance(error, ToolFailure) and error.returncode is None:
        err_console.print("    hint: is it installed and on PATH?", markup=False)


def handle_errors(func: F) -> F:
    """Map exceptions to exit codes; the only place that does."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except FlobsError as err:
            if _show_traceback:
                err_console.print_exception()
            report_error(err)
            raise typer.Exit(int(err.exit_code)) from err
        except KeyboardInterrupt:
            err_console.print("interrupted", markup=False)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # stdout closed early (`flobs … | head`): not an error worth a traceback.
            sys.stderr.close()
            raise typer.Exit(int(ExitCode.OK)) from None
        except Exception as err:  # a bug: say so plainly, keep the traceback opt-in
            if _show_traceback:
                err_console.print_exception()
            err_console.print(
                f"internal error: {type(err).__name__}: {err}\n"
                "    hint: this is a bug in flobs; rerun with --traceback and report it",
                markup=False,
            )
            raise typer.Exit(int(ExitCode.REMOTE)) from err

    return wrapper  # type: ignore[return-value]


def _register() -> None:
    # Imported for their side effect of adding commands to `app`, in pipeline order,
    # which is the order `flobs --help` lists them in.
    for name in ("generate", "validate", "push", "pull", "verify", "simulate", "demo"):
        importlib.import_module(f"flobs.commands.{name}")


def main() -> None:
    # What bypasses the consoles (click's usage errors, warnings) is redacted too.
    sys.stdout = redacting("stdout", target=sys.stdout)
    sys.stderr = redacting("stderr", target=sys.stderr)
    _register()
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        sys.exit(int(ExitCode.INTERRUPTED))
