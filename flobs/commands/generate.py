"""`flobs generate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flobs.cli import (
    ProgressBar,
    app,
    err_console,
    handle_errors,
    out_console,
    out_dir,
)
from flobs.errors import ExitCode
from flobs.generate import generate as run_generate
from flobs.generate import iter_check_report
from flobs.output import LOCK_WAIT_SECONDS

PROGRESS_MIN_HOSTS = 200


@app.command(
    "generate",
    epilog="Example: flobs generate -i inventory.yaml -o out; "
    "in CI: flobs generate -i inventory.yaml -o out --check",
)
@handle_errors
def generate_command(
    inventory: Annotated[
        Path,
        typer.Option(
            "-i",
            "--inventory",
            metavar="INVENTORY",
            dir_okay=False,
            help="The host inventory (YAML).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--out",
            metavar="OUT",
            parser=out_dir,
            help="Output directory, written atomically (a symlink to a directory is followed).",
        ),
    ],
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; exit 1 and show a diff "
            "when OUT is not what the inventory generates, 0 when current.",
        ),
    ] = False,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            metavar="HOST",
            help="Only regenerate this host's files "
            "(repeatable); other hosts' files are left as they are.",
        ),
    ] = None,
    lock_wait: Annotated[
        float,
        typer.Option(
            "--lock-wait",
            metavar="SECONDS",
            min=0,
            help="How long to wait for another flobs generate writing the same OUT "
            "before giving up (exit 3).",
        ),
    ] = LOCK_WAIT_SECONDS,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Render every host, even those whose inputs manifest.json records as "
            "unchanged and whose files still hash right (use in CI when OUT's manifest "
            "comes from the change under review).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing on success.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Inventory warnings (e.g. a credential sent over plain http) are errors: "
            "exit 2, nothing written.",
        ),
    ] = False,
) -> None:
    """Render every host's and the central configs from the inventory into OUT.

    Exit codes: 0 written (or, with --check, OUT is current) · 1 --check found OUT
    out of date · 2 bad inventory or usage · 3 disk, permission or lock failure ·
    130 interrupted (OUT keeps the old tree).
    """
    with ProgressBar("rendering hosts", enabled=not quiet, minimum=PROGRESS_MIN_HOSTS) as bar:
        result = run_generate(
            inventory,
            out,
            check=check,
            hosts=host or None,
            progress=bar,
            inventory_display=str(inventory),
            strict=strict,
            out_display=str(out),
            lock_wait=lock_wait,
            full=full,
        )
    for warning in result.warnings:
        err_console.print(warning.render(), markup=False)
    c = result.changes
    summary = (
        f"{len(c.added)} added, {len(c.changed)} changed, {len(c.removed)} removed, "
        f"{c.unchanged} unchanged ({len(result.fleet.hosts)} hosts, "
        f"{len(result.rendered_hosts)} rendered)"
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
