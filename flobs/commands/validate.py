"""`flobs validate`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flobs.checks import ToolMode
from flobs.cli import app, err_console, handle_errors, out_console
from flobs.commands import options
from flobs.errors import ExitCode, SystemFailure, UsageError
from flobs.report import render
from flobs.validate import checks_text, stats_line, validate


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    junit = "junit"
    github = "github"


class ToolsMode(StrEnum):
    auto = "auto"
    require = "require"
    off = "off"


@app.command(
    "validate",
    epilog="Example: flobs validate out -i inventory.yaml --format github "
    "(annotations in a GitHub Actions log)",
)
@handle_errors
def validate_command(
    out: Annotated[Path | None, options.out_argument()] = None,
    inventory: Annotated[
        Path | None,
        options.inventory_option(
            "The inventory OUT was generated from; enables the checks that compare with it."
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Report format.")
    ] = ReportFormat.text,
    tools: Annotated[
        ToolsMode,
        typer.Option(
            "--tools",
            help="Real tools (promtool, promtail, alloy, "
            "otelcol): auto = use those on PATH and note the others, require "
            "= a missing one is an error (exit 3), off = never run them.",
        ),
    ] = ToolsMode.auto,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    disable: Annotated[
        list[str] | None,
        typer.Option(
            "--disable",
            metavar="CHECK",
            help="Do not run this check (repeatable). Listed as disabled in every report.",
        ),
    ] = None,
    enable: Annotated[
        list[str] | None,
        typer.Option(
            "--enable",
            metavar="CHECK",
            help="Run this check although the inventory's validation.disable turns it off.",
        ),
    ] = None,
    list_checks: Annotated[
        bool,
        typer.Option("--list-checks", help="Describe every check (id, what, why, an example)."),
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            metavar="DIR",
            file_okay=False,
            help="Keep per-file results here and reuse them for unchanged files "
            "(default: $XDG_CACHE_HOME/flobs, else ~/.cache/flobs; never inside OUT).",
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Check every file again; read and write no cache."),
    ] = False,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Say on stderr how many per-file results came from the cache and how "
            "many were computed.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="FILE",
            dir_okay=False,
            help="Write the report to this file instead of stdout.",
        ),
    ] = None,
) -> None:
    """Check a generated tree: schemas, manifest, Prometheus, PromQL, dashboards,
    cross-artifact closure, and the real tools.

    Exit codes: 0 clean · 1 findings (errors, or warnings with --strict) · 2 bad
    usage · 3 a tool crashed, or is missing under --tools require · 130 interrupted.
    """
    if list_checks:
        out_console.file.write(checks_text())
        return
    if out is None:
        raise UsageError(
            "missing OUT: the directory `flobs generate -o OUT` wrote",
            hint="flobs validate OUT [-i INVENTORY]",
        )
    mode: ToolMode = "auto" if tools == "auto" else "require" if tools == "require" else "off"
    result = validate(
        out,
        inventory=inventory,
        tools=mode,
        strict=strict,
        disable=tuple(disable or ()),
        enable=tuple(enable or ()),
        cache_dir=cache_dir,
        use_cache=not no_cache,
    )
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False)
    if stats:
        err_console.print(stats_line(result), markup=False)
    report = render(result, fmt.value, base=str(out))
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(report, encoding="utf-8")
        except OSError as err:
            raise SystemFailure(f"cannot write {output}: {err.strerror}") from err
    else:
        out_console.file.write(report)
        out_console.file.flush()
    verdict = "failed" if result.failed else "passed"
    if output is not None or fmt != "text":
        err_console.print(
            f"validate {verdict}: {result.errors} errors, {result.warnings} warnings ({out})",
            markup=False,
        )
    if result.failed:
        raise typer.Exit(int(ExitCode.FINDINGS))
