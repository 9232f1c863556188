"""Options several commands share, declared once so that a flag reads, parses and
defaults the same in every command that has it: OUT, -i INVENTORY, and the Grafana
connection of push-dashboards and pull-dashboards (one GrafanaClient behind both).

Each factory returns the ``typer.Argument``/``typer.Option`` for an ``Annotated``
declaration; the parameter's type and default stay in the command, where
tests/test_cli_help.py expects every option to be declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flobs.cli import out_dir
from flobs.errors import UsageError
from flobs.grafana.client import check_base_url

GENERATED_TREE = "The generated tree (flobs generate -o OUT)."
HOST_INVENTORY = "The host inventory (YAML)."
GRAFANA_TIMEOUT = 10.0  # seconds per request
GRAFANA_TOKEN_ENV = "GRAFANA_TOKEN"  # noqa: S105 - the variable's name, not a token
# The inventory schema's defaults for central.grafana, so that --folder-uid/--folder-title
# and -i land in the same folder.
DEFAULT_FOLDER_UID = "flobs-flintlock"
DEFAULT_FOLDER_TITLE = "Flintlock"


def out_argument(text: str = GENERATED_TREE) -> Any:
    """OUT as a positional argument (an empty string is refused, see ``out_dir``)."""
    return typer.Argument(metavar="OUT", parser=out_dir, show_default=False, help=text)


def inventory_option(text: str = HOST_INVENTORY) -> Any:
    """-i/--inventory; ``text`` says what this command reads from it."""
    return typer.Option("-i", "--inventory", metavar="INVENTORY", dir_okay=False, help=text)


# --------------------------------------------------------------------------- Grafana


def grafana_url_option() -> Any:
    return typer.Option(
        "--grafana-url",
        metavar="URL",
        help="Grafana base URL; default: central.grafana.url of -i INVENTORY.",
    )


def folder_uid_option(text: str) -> Any:
    return typer.Option("--folder-uid", metavar="UID", help=text)


def org_id_option() -> Any:
    return typer.Option("--org-id", min=1, help="Grafana organisation (sent as X-Grafana-Org-Id).")


def token_env_option() -> Any:
    return typer.Option(
        "--token-env",
        metavar="VAR",
        help="Environment variable holding the service-account token; without it, basic "
        "auth from GRAFANA_USER/GRAFANA_PASSWORD.",
    )


def ca_file_option() -> Any:
    return typer.Option(
        "--ca-file",
        metavar="FILE",
        dir_okay=False,
        exists=True,
        help="PEM CA bundle that signed Grafana's certificate.",
    )


def timeout_option() -> Any:
    return typer.Option(
        "--timeout",
        min=0.1,
        max=600,
        help="Seconds per HTTP request, the whole answer included (connect: at most 5).",
    )


def grafana_target(
    inventory: Path | None, url: str | None, folder_uid: str | None, folder_title: str | None
) -> tuple[str, str, str]:
    """(base URL, folder uid, folder title): the options, else -i's central.grafana,
    else the schema's defaults. No URL from either is a usage error."""
    if inventory is not None:
        from flobs.inventory import load_fleet

        grafana = load_fleet(inventory).fleet.central.grafana
        url = url or grafana.url
        folder_uid = folder_uid or grafana.folder_uid
        folder_title = folder_title or grafana.folder
    if not url:
        raise UsageError(
            "no Grafana URL",
            hint="pass --grafana-url URL, or -i INVENTORY to use its central.grafana.url",
        )
    return (
        check_base_url(url),
        folder_uid or DEFAULT_FOLDER_UID,
        folder_title or DEFAULT_FOLDER_TITLE,
    )
