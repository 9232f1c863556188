"""`flobs generate`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flobs.cli import app, err_console, handle_errors, out_console
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
) -> None:
    """Render every host's and the central configs from the inventory into OUT."""
    show_bar = sys.stderr.isatty() and not quiet
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = None

    def on_progress(done: int, total: int) -> None:
        nonlocal task
        if not show_bar or total < PROGRESS_MIN_HOSTS:
            return
        if task is None:
            bar.start()
            task = bar.add_task("rendering hosts", total=total)
        bar.update(task, completed=done)

    try:
        result = run_generate(
            inventory,
            out,
            check=check,
            hosts=host or None,
            progress=on_progress,
            inventory_display=str(inventory),
        )
    finally:
        if task is not None:
            bar.stop()
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
