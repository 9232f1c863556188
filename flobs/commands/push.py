"""`flobs push-dashboards`: push OUT's dashboards (and datasources) to Grafana."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from flobs.cli import ProgressBar, app, err_console, handle_errors, out_console
from flobs.commands import options
from flobs.errors import ExitCode, UsageError
from flobs.grafana.client import GrafanaClient, RetryPolicy, credentials_from_env
from flobs.grafana.push import Action, PushOptions, PushResult, folder_chain, push

PROGRESS_MIN_DASHBOARDS = 10
_ACTION_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "cyan",
    Action.UNCHANGED: "dim",
    Action.CONFLICT: "bold red",
    Action.SKIPPED: "yellow",
    Action.FAILED: "bold red",
    Action.DELETE: "magenta",
}


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


@app.command(
    "push-dashboards",
    epilog="Example: GRAFANA_TOKEN=... flobs push-dashboards out -i inventory.yaml --dry-run",
)
@handle_errors
def push_dashboards_command(
    out: Annotated[Path, options.out_argument()],
    grafana_url: Annotated[str | None, options.grafana_url_option()] = None,
    inventory: Annotated[
        Path | None, options.inventory_option("Take the URL and folder from this inventory.")
    ] = None,
    folder_uid: Annotated[
        str | None,
        options.folder_uid_option(
            "Folder uid; nested folders as parent/child (parents first). Default: the "
            "inventory's, else flobs-flintlock."
        ),
    ] = None,
    folder_title: Annotated[
        str | None,
        typer.Option(
            "--folder-title",
            metavar="TITLE",
            help="Folder title used "
            "when the folder is created. Default: the "
            "inventory's, else Flintlock.",
        ),
    ] = None,
    org_id: Annotated[int | None, options.org_id_option()] = None,
    token_env: Annotated[str, options.token_env_option()] = options.GRAFANA_TOKEN_ENV,
    datasources: Annotated[
        bool,
        typer.Option(
            "--datasources",
            help="Also create/update the datasources of "
            "grafana/provisioning/datasources/flobs.yaml.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan with short diffs; write nothing.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Overwrite dashboards edited in Grafana (conflicts) and re-send datasource "
            "secrets.",
        ),
    ] = False,
    force_uid: Annotated[
        list[str] | None,
        typer.Option(
            "--force-uid",
            metavar="UID",
            help="Like --force, for this dashboard only (repeatable).",
        ),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Delete dashboards flobs pushed (its marker, this folder) that OUT no longer "
            "has; never one flobs did not push. Try with --dry-run first.",
        ),
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=32, help="Dashboards pushed in parallel.")
    ] = 4,
    ca_file: Annotated[Path | None, options.ca_file_option()] = None,
    insecure_skip_verify: Annotated[
        bool,
        typer.Option(
            "--insecure-skip-verify",
            help="Do not verify Grafana's TLS certificate (throw-away test instances only).",
        ),
    ] = False,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            min=0,
            max=10,
            help="Retries of a request that failed transiently (429, 502-504, connection errors).",
        ),
    ] = 4,
    timeout: Annotated[float, options.timeout_option()] = options.GRAFANA_TIMEOUT,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="text (table) or json on stdout.")
    ] = OutputFormat.text,
) -> None:
    """Push the generated dashboards to Grafana: idempotent, never clobbering edits.

    Exit codes: 0 pushed (or nothing to do) · 1 conflicts or failed dashboards ·
    2 bad input or usage · 3 Grafana unreachable or credentials refused ·
    130 interrupted.
    """
    if ca_file is not None and insecure_skip_verify:
        raise UsageError("--ca-file and --insecure-skip-verify contradict each other")
    if not out.is_dir():
        raise UsageError(f"{out} is not a directory", hint="run `flobs generate -o OUT` first")
    url, folder_uid, folder_title = options.grafana_target(
        inventory, grafana_url, folder_uid, folder_title
    )
    folders = folder_chain(folder_uid, folder_title)
    # Everything local is checked before the first request: dashboards, datasources
    # (a missing ${VAR} is exit 2), credentials.
    from flobs.grafana.datasources import read_datasources
    from flobs.grafana.push import load_dashboards

    if not load_dashboards(out) and prune:
        raise UsageError(
            f"--prune with no dashboards in {out}/grafana/dashboards would delete every "
            "dashboard flobs pushed",
            hint="check OUT; run `flobs generate` first",
        )
    specs = read_datasources(out) if datasources else []
    credentials = credentials_from_env(os.environ, token_env)
    if url.startswith("http://") and not _is_loopback_url(url):
        err_console.print(
            f"warning: {url} is plain http: the credentials cross the network unencrypted",
            markup=False,
        )
    if insecure_skip_verify:
        err_console.print("warning: TLS verification is off (--insecure-skip-verify)", markup=False)

    bar = ProgressBar(
        "pushing dashboards",
        enabled=output_format is OutputFormat.text,
        minimum=PROGRESS_MIN_DASHBOARDS,
    )
    push_options = PushOptions(
        folders=folders,
        dry_run=dry_run,
        force=force,
        force_uids=frozenset(force_uid or ()),
        prune=prune,
        concurrency=concurrency,
        progress=bar,
    )
    extra = tuple(s for spec in specs for s in spec.secrets())
    with GrafanaClient(
        url,
        credentials,
        org_id=org_id,
        timeout=timeout,
        ca_file=ca_file,
        insecure_skip_verify=insecure_skip_verify,
        retry=RetryPolicy(attempts=retries + 1),
        concurrency=concurrency,
        extra_secrets=extra,
    ) as client:
        with bar:
            result = push(client, out, push_options, datasources=specs)
        _report(result, output_format)
    if not result.ok:
        raise typer.Exit(int(ExitCode.FINDINGS))


def _is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    from flobs.model import Endpoint

    return Endpoint(urlsplit(url).hostname or "", 0).is_loopback


def _report(result: PushResult, output_format: OutputFormat) -> None:
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", markup=False)
    if output_format is OutputFormat.json:
        out_console.file.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        verb = "plan for" if result.dry_run else "pushed to"
        version = f" (Grafana {result.grafana_version})" if result.grafana_version else ""
        table = Table(title=f"{verb} {result.grafana_url}{version}", title_justify="left")
        for column in ("kind", "uid", "title", "action", "detail"):
            table.add_column(column, overflow="fold")
        for item in result.items:
            action = (
                "would " + item.action.value
                if result.dry_run and item.action in (Action.CREATE, Action.UPDATE, Action.DELETE)
                else item.action.value
            )
            # Titles and server messages are data, never rich markup.
            table.add_row(
                Text(item.kind),
                Text(item.uid),
                Text(item.title),
                Text(action, style=_ACTION_STYLE[item.action]),
                Text(item.detail),
            )
        out_console.print(table)
        for item in result.items:
            if item.diff and (result.dry_run or item.action is Action.CONFLICT):
                out_console.print(f"\n{item.kind} {item.uid} ({item.action.value}):", markup=False)
                for line in item.diff:
                    out_console.print(f"  {line}", markup=False)
    err_console.print(
        f"{'dry run, nothing written: ' if result.dry_run else ''}{summary(result)}",
        markup=False,
    )


def summary(result: PushResult) -> str:
    """``dashboards: 2 create, 1 unchanged; folders: 1 unchanged``."""
    parts = []
    for kind in ("dashboard", "datasource", "folder"):
        items = result.of_kind(kind)
        counts = [f"{n} {a.value}" for a in Action if (n := sum(i.action is a for i in items))]
        if counts:
            parts.append(f"{kind}s: {', '.join(counts)}")
    return "; ".join(parts) or "nothing to push"
