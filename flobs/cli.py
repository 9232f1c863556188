"""The command line: thin. Each command parses options, calls one core function,
and maps its result to an exit code. Every error is mapped here, in one place.

Exit codes (all commands): 0 ok · 1 findings · 2 bad input or usage ·
3 remote or system failure · 130 interrupted.

Two things are handled here once, for every command: a closed stdout or stderr
(``flobs … | head -1``) never changes the exit code, since the rest of the output
is dropped and the command finishes; and Ctrl-C means exit 130 without a
traceback from the moment flobs' own code runs (``flobs.__main__`` covers the
imports).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import IO, Annotated, Any, TextIO, TypeVar, cast

import typer
import typer.core
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
from flobs.errors import ExitCode, FlobsError, InputError, SystemFailure, ToolFailure
from flobs.redact import install_log_redaction, redacting, register_url

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = (
    "Exit codes: 0 ok · 1 findings · 2 bad input or usage · 3 remote or system failure · "
    "130 interrupted."
)


class _Usage:
    """Help that reads the same in every command: a flag shows no value placeholder
    (typer prints `<bool>`), an argument is shown by its name alone (OUT, as the
    options name it, not `OUT <Path>`), and a required argument reads OUT, not {OUT}."""

    @staticmethod
    def flags_without_metavar(params: list[Any]) -> list[Any]:
        for param in params:
            if isinstance(param, typer.core.TyperOption) and (param.is_flag or param.count):
                param.metavar = ""
            elif isinstance(param, typer.core.TyperArgument) and param.metavar:
                # typer offers no setting for this; an instance attribute shadows the method
                param.display_type_rich = _no_type  # type: ignore[method-assign]
        return params

    @staticmethod
    def plain(pieces: list[str]) -> list[str]:
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


def _no_type(ctx: Any) -> None:
    return None


class FlobsCommand(typer.core.TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _Usage.flags_without_metavar(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _Usage.plain(super().collect_usage_pieces(ctx))


class FlobsGroup(typer.core.TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _Usage.flags_without_metavar(super().get_params(ctx))


class FlobsApp(typer.Typer):
    """Every command gets :class:`FlobsCommand` without having to ask for it."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", FlobsCommand)
        decorator: Callable[[F], F] = super().command(*args, **kwargs)
        return decorator


def out_dir(value: str) -> Path:
    """OUT as given: a directory path; an empty string is not the current directory."""
    if not value.strip():
        raise typer.BadParameter("OUT must not be empty (write `.` for this directory)")
    return Path(value)


app = FlobsApp(
    cls=FlobsGroup,
    name="flobs",
    help="Observability provisioner for Flintlock fleets: one host inventory in, a validated "
    "Prometheus / Loki / OpenTelemetry / Grafana stack out.\n\n"
    "Example: flobs generate -i inventory.yaml -o out && flobs validate out\n\n" + EXIT_CODES_HELP,
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
    traceback: Annotated[
        bool,
        typer.Option(
            "--traceback", help="Show the Python traceback of an error (for bug reports)."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    deadline: Annotated[
        float,
        typer.Option(
            "--deadline",
            envvar="FLOBS_DEADLINE",
            min=1,
            max=86400,
            metavar="SECONDS",
            help="The most a command may spend on HTTP requests (Grafana, Prometheus) in total.",
        ),
    ] = httpio.DEFAULT_COMMAND_DEADLINE,
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
            with contextlib.suppress(ValueError):  # only the main thread handles signals
                signal.signal(signal.SIGINT, signal.default_int_handler)
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except FlobsError as err:
            if _show_traceback:
                err_console.print_exception()
            report_error(err)
            raise typer.Exit(int(err.exit_code)) from err
        except KeyboardInterrupt:
            _say_interrupted()
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Abort, SystemExit):
            raise
        except BrokenPipeError as err:
            # stdout/stderr cannot raise this (see PipeSafeStream); another pipe did.
            report_error(SystemFailure(f"a pipe closed while flobs wrote to it: {err}"))
            raise typer.Exit(int(ExitCode.REMOTE)) from err
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


class PipeSafeStream:
    """stdout/stderr that a closed pipe cannot turn into an exception.

    Once the reader is gone (``| head -1``, ``| true``), the rest is written to
    /dev/null and the command goes on to its own exit code: findings stay 1. The
    file descriptor is pointed at /dev/null so that Python's final flush is quiet.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.reader_gone = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _interrupted_between_commands(signum: int, frame: object) -> None:
    # Before the commands are loaded and after one has finished there is nothing
    # to clean up: flush what was printed, say so and leave with 130. (Raising
    # here could land in an import's weakref callback, where it would be ignored.)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, b"interrupted\n")
    os._exit(int(ExitCode.INTERRUPTED))


def _say_interrupted() -> None:
    """Straight to fd 2, like the signal handlers: nothing buffered can lose it on exit."""
    # Flushing what came before is best effort: whatever it raises (a reentrant call
    # into a buffer the interrupt left half-written) must not cost the word itself.
    with contextlib.suppress(Exception):
        err_console.file.flush()
    with contextlib.suppress(OSError):
        os.write(2, b"interrupted\n")


def main() -> None:
    """The `flobs` program (``flobs.__main__`` installs the SIGINT handler first)."""
    signal.signal(signal.SIGINT, _interrupted_between_commands)
    # What bypasses the consoles (click's usage errors, warnings) is redacted too;
    # beneath the redaction, a closed pipe drops the output instead of raising.
    sys.stdout = redacting("stdout", target=cast(TextIO, PipeSafeStream(sys.stdout)))
    sys.stderr = redacting("stderr", target=cast(TextIO, PipeSafeStream(sys.stderr)))
    try:
        _register()
        # Parsing the arguments (typer imports pydantic then) stays under
        # _interrupted_between_commands: typer would turn a KeyboardInterrupt there
        # into a silent 130. handle_errors raises it only once the command runs.
        app()
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(int(ExitCode.INTERRUPTED))
    finally:
        signal.signal(signal.SIGINT, _interrupted_between_commands)
