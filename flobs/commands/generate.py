"""`flobs generate`."""

from __future__ import annotations

from pathlib import Path

import typer

from flobs.cli import ProgressBar, app, err_console, handle_errors, out_console
from flobs.errors import ExitCode
from flobs.generate import generate as run_generate
from flobs.generate import iter_check_report

PROGRESS_MIN_HOSTS = 200


@app.command("generate")
@handle_errors
def generate_command(
    inventory: Path = typer.Option(
        ..., "-i", "--inventory", help="The host inventory (YAML).", dir_okay=False
    ),
    out: Path = typer.Option(
        ..., "-o", "--out", help="Output directory; written atomically.", file_okay=False
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Write nothing; exit 1 and show a diff "
        "when OUT is not what the inventory generates, 0 when current.",
    ),
    host: list[str] = typer.Option(
        [],
        "--host",
        help="Only regenerate this host's files "
        "(repeatable); other hosts' files are left as they are.",
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing on success."),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Inventory warnings (e.g. a credential sent over plain http) are errors: "
        "exit 2, nothing written.",
    ),
) -> None:
    """Render every host's and the central configs from the inventory into OUT."""
    with ProgressBar("rendering hosts", enabled=not quiet, minimum=PROGRESS_MIN_HOSTS) as bar:
        result = run_generate(
            inventory,
            out,
            check=check,
            hosts=host or None,
            progress=bar,
            inventory_display=str(inventory),
            strict=strict,
        )
    for warning in result.warnings:
        err_console.print(warning.render(), markup=False)
    c = result.changes
    summary = (
        f"{len(c.added)} added, {len(c.changed)} changed, {len(c.removed)} removed, "
        f"{c.unchanged} unchanged ({len(result.fleet.hosts)} hosts)"
    )
    if check:
        if c.empty:
            if not quiet:
                err_console.print(f"{out} is up to date: {summary}", markup=False)
            return
        for line in iter_check_report(result, out):
            out_console.file.write(line)
        err_console.print(f"{out} is out of date: {summary}", markup=False)
        raise typer.Exit(int(ExitCode.FINDINGS))
    if not quiet:
        err_console.print(f"wrote {out}: {summary}", markup=False)
