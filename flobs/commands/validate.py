"""`flobs validate`."""

from __future__ import annotations

from pathlib import Path

import typer

from flobs.checks import ToolMode
from flobs.cli import app, err_console, handle_errors, out_console
from flobs.errors import ExitCode, SystemFailure, UsageError
from flobs.report import FORMATS, render
from flobs.validate import checks_text, validate

TOOL_MODES = ("auto", "require", "off")


@app.command("validate")
@handle_errors
def validate_command(
    out: Path | None = typer.Argument(
        None, help="The output tree `flobs generate` wrote.", show_default=False, metavar="OUT"
    ),
    inventory: Path | None = typer.Option(
        None,
        "-i",
        "--inventory",
        dir_okay=False,
        help="The inventory OUT was generated from; enables the checks that compare with it.",
    ),
    fmt: str = typer.Option(
        "text", "--format", "-f", help="Report format: text, json, junit or github."
    ),
    tools: str = typer.Option(
        "auto",
        "--tools",
        help="Real tools (promtool, promtail, alloy, "
        "otelcol): auto = use those on PATH and note the others, require "
        "= a missing one is an error (exit 3), off = never run them.",
    ),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail too (exit 1)."),
    disable: list[str] = typer.Option(
        [],
        "--disable",
        metavar="CHECK",
        help="Do not run this check (repeatable). Listed as disabled in every report.",
    ),
    enable: list[str] = typer.Option(
        [],
        "--enable",
        metavar="CHECK",
        help="Run this check although the inventory's validation.disable turns it off.",
    ),
    list_checks: bool = typer.Option(
        False, "--list-checks", help="Describe every check (id, what, why, an example)."
    ),
    output: Path | None = typer.Option(
        None, "--output", dir_okay=False, help="Write the report to this file instead of stdout."
    ),
) -> None:
    """Check a generated tree: schemas, manifest, Prometheus, PromQL, dashboards,
    cross-artifact closure, and the real tools. Exit 0 clean, 1 findings, 2 bad usage,
    3 a tool crashed."""
    if list_checks:
        out_console.file.write(checks_text())
        return
    if out is None:
        raise UsageError(
            "missing OUT: the directory `flobs generate -o OUT` wrote",
            hint="flobs validate OUT [-i INVENTORY]",
        )
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if tools not in TOOL_MODES:
        raise UsageError(f"--tools {tools!r} is not one of {', '.join(TOOL_MODES)}")
    mode: ToolMode = "auto" if tools == "auto" else "require" if tools == "require" else "off"
    result = validate(
        out,
        inventory=inventory,
        tools=mode,
        strict=strict,
        disable=tuple(disable),
        enable=tuple(enable),
    )
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False)
    report = render(result, fmt, base=str(out))
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
