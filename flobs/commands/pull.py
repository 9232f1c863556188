"""`flobs pull-dashboards`: show and bring home dashboard edits made in Grafana."""

from __future__ import annotations

import contextlib
import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flobs import yamlio
from flobs.cli import app, err_console, handle_errors, out_console
from flobs.commands import options
from flobs.errors import ExitCode, SystemFailure, UsageError
from flobs.grafana.client import GrafanaClient, RetryPolicy, credentials_from_env
from flobs.grafana.pull import PullResult, PullState, pull
from flobs.grafana.push import DashboardPush, PushOptions, folder_chain, load_dashboards


class PullFormat(StrEnum):
    text = "text"
    json = "json"


@app.command(
    "pull-dashboards",
    epilog="Example: GRAFANA_TOKEN=... flobs pull-dashboards out -i inventory.yaml "
    "--patch-out overrides.yaml",
)
@handle_errors
def pull_dashboards_command(
    out: Annotated[Path, options.out_argument()],
    grafana_url: Annotated[str | None, options.grafana_url_option()] = None,
    inventory: Annotated[
        Path | None,
        options.inventory_option(
            "The inventory OUT came from: where --write puts files, and how flobs' panel "
            "titles are keyed in overrides."
        ),
    ] = None,
    folder_uid: Annotated[
        str | None, options.folder_uid_option("The folder push-dashboards pushes into.")
    ] = None,
    org_id: Annotated[int | None, options.org_id_option()] = None,
    token_env: Annotated[str, options.token_env_option()] = options.GRAFANA_TOKEN_ENV,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Write edited user dashboards over their source files and edits of flobs' "
            "dashboards that overrides cannot express as extra dashboards (needs -i).",
        ),
    ] = False,
    patch_out: Annotated[
        Path | None,
        typer.Option(
            "--patch-out",
            metavar="FILE",
            dir_okay=False,
            help="Write the overrides patch (YAML, for the inventory's extensions:) to this file.",
        ),
    ] = None,
    ca_file: Annotated[Path | None, options.ca_file_option()] = None,
    timeout: Annotated[float, options.timeout_option()] = options.GRAFANA_TIMEOUT,
    output_format: Annotated[
        PullFormat, typer.Option("--format", help="Report format.")
    ] = PullFormat.text,
) -> None:
    """Compare OUT's dashboards with Grafana's and bring UI edits home: user dashboards
    back to their files, flobs' as an overrides patch (or an extra dashboard).

    Exit codes: 0 nothing to pull, or written with --write · 1 edits found and not
    written · 2 bad usage · 3 Grafana unreachable or credentials refused ·
    130 interrupted.
    """
    if write and inventory is None:
        raise UsageError("--write needs -i INVENTORY: files are written next to it")
    url, folder, title = options.grafana_target(inventory, grafana_url, folder_uid, None)
    dashboards = load_dashboards(out)
    user_sources: dict[str, str] = {}
    titles: dict[str, dict[int, str]] = {}
    dashboards_dir: Path | None = None
    if inventory is not None:
        from flobs.artifacts.extensions import original_panel_titles
        from flobs.inventory import load_fleet

        fleet = load_fleet(inventory).fleet
        titles = original_panel_titles()
        user_sources = {
            f.path: f.source for f in fleet.extensions.user_files if f.kind == "dashboard"
        }
        raw_dir = _dashboards_dir(inventory)
        dashboards_dir = inventory.parent / raw_dir if raw_dir else None
    credentials = credentials_from_env(os.environ, token_env)
    with GrafanaClient(
        url,
        credentials,
        org_id=org_id,
        timeout=timeout,
        ca_file=ca_file,
        retry=RetryPolicy(),
    ) as client:
        run = DashboardPush(client, PushOptions(folders=folder_chain(folder, title), dry_run=True))
        result = pull(
            client, dashboards, user_sources=user_sources, original_titles=titles, run=run
        )
    written = _write(result, inventory, dashboards_dir, patch_out) if write or patch_out else []
    _report(result, output_format, written)
    if result.edited and not write:
        raise typer.Exit(int(ExitCode.FINDINGS))


def _dashboards_dir(inventory: Path) -> str | None:
    doc = yamlio.load(inventory.read_text(encoding="utf-8"))
    ext = doc.get("extensions") if isinstance(doc, dict) else None
    value = ext.get("dashboards_dir") if isinstance(ext, dict) else None
    return value if isinstance(value, str) else None


def _write(
    result: PullResult, inventory: Path | None, dashboards_dir: Path | None, patch: Path | None
) -> list[str]:
    written: list[str] = []
    files: dict[Path, bytes] = {}
    for item in result.edited:
        if item.write is None or inventory is None:
            continue
        rel, model = item.write
        if rel.endswith("-edited.json"):
            if dashboards_dir is None:
                raise UsageError(
                    f"dashboard {item.uid}: the edit needs an extra dashboard, but the "
                    "inventory has no extensions.dashboards_dir",
                    hint="set extensions.dashboards_dir: dashboards and run again",
                )
            target = dashboards_dir / rel
        else:
            target = inventory.parent / rel
        files[target] = (json.dumps(model, indent=2, sort_keys=True) + "\n").encode()
    if patch is not None and result.overrides_patch():
        header = "Overrides pulled from Grafana: merge into the inventory's extensions:."
        files[patch] = yamlio.dump(result.overrides_patch(), header=header).encode()
    for target, data in files.items():
        write_file(target, data)
        written.append(str(target))
    return written


def write_file(target: Path, data: bytes) -> None:
    """Atomically: a reader never sees half a file, and a failed write leaves no
    temporary file behind (its name is this process's, so two pulls never share it)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.flobs-tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(target)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise SystemFailure(f"cannot write {target}: {err.strerror}") from err


def _report(result: PullResult, fmt: PullFormat, written: list[str]) -> None:
    if fmt is PullFormat.json:
        doc = {
            "grafana": result.grafana_url,
            "items": [i.to_json() for i in result.items],
            "overrides_patch": result.overrides_patch(),
            "written": written,
        }
        out_console.file.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    write = out_console.file.write
    for item in result.items:
        write(f"{item.state.value:<9} {item.uid}  {item.title}\n")
        if item.state is PullState.EDITED:
            for line in item.diff:
                write(f"    {line}\n")
            for reason in item.not_expressible:
                write(f"    not expressible as overrides: {reason}\n")
    patch = result.overrides_patch()
    if patch:
        write("\n# overrides patch for the inventory:\n")
        write(yamlio.dump(patch))
    for path in written:
        err_console.print(f"wrote {path}", markup=False)
    counts = {s: sum(i.state is s for i in result.items) for s in PullState}
    err_console.print(
        ", ".join(f"{n} {s.value}" for s, n in counts.items() if n) or "no dashboards",
        markup=False,
    )
