"""flobs.commands.options: the options several commands share read, parse and default
the same everywhere, and the Grafana target resolves options > -i > schema defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main

from flobs import resources
from flobs.cli import _register, app
from flobs.commands import options
from flobs.errors import UsageError

_register()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inventory.yaml"


def _param(command: str, name: str) -> Any:
    """The parsed parameter (typer's vendored click, so not typed here)."""
    group: Any = typer.main.get_command(app)
    (param,) = [p for p in group.commands[command].params if p.name == name]
    return param


def _described(param: Any) -> tuple[Any, ...]:
    """What parses and shows the parameter: its declaration, type, default, help."""
    declared = param.type_descriptor
    return (
        type(param).__name__,
        tuple(param.opts),
        declared.annotation,
        sorted(vars(declared.parameter_info).items(), key=lambda kv: kv[0]),
        param.default,
        param.required,
        param.help,
    )


@pytest.mark.parametrize(
    "name", ["out", "grafana_url", "org_id", "token_env", "ca_file", "timeout"]
)
def test_push_and_pull_declare_their_common_grafana_options_identically(name: str) -> None:
    push = _described(_param("push-dashboards", name))
    assert push == _described(_param("pull-dashboards", name))
    assert push[-1], f"{name} has no help"


def test_out_reads_the_same_in_validate_push_and_pull() -> None:
    validate = _param("validate", "out")
    assert (validate.metavar, validate.help) == ("OUT", options.GENERATED_TREE)
    assert validate.required is False  # validate --list-checks needs no OUT
    assert _param("push-dashboards", "out").required is True


@pytest.mark.parametrize(
    ("command", "text"),
    [
        ("simulate", options.HOST_INVENTORY),
        ("verify", options.HOST_INVENTORY),
        ("validate", "The inventory OUT was generated from; enables the checks that compare"),
        ("push-dashboards", "Take the URL and folder from this inventory."),
        ("pull-dashboards", "The inventory OUT came from: where --write puts files"),
    ],
)
def test_inventory_is_one_option_whose_help_says_what_the_command_reads(
    command: str, text: str
) -> None:
    param = _param(command, "inventory")
    assert (tuple(param.opts), param.metavar) == (("-i", "--inventory"), "INVENTORY")
    assert param.type_descriptor.parameter_info.dir_okay is False
    assert param.help.startswith(text)


def test_folder_defaults_are_the_inventory_schemas() -> None:
    grafana = resources.schema("inventory.schema.json")["properties"]["central"]["properties"][
        "grafana"
    ]["properties"]
    assert grafana["folder_uid"]["default"] == options.DEFAULT_FOLDER_UID
    assert grafana["folder"]["default"] == options.DEFAULT_FOLDER_TITLE


def _inventory(tmp_path: Path, grafana: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "  grafana:\n    url: https://grafana.example.internal\n    folder: Flintlock\n", grafana
    )
    assert text != EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_grafana_target_takes_options_first_then_the_inventory_then_the_defaults(
    tmp_path: Path,
) -> None:
    inv = _inventory(
        tmp_path,
        "  grafana:\n    url: https://g.example/\n    folder: Fleet\n    folder_uid: fleet\n",
    )
    assert options.grafana_target(inv, None, None, None) == ("https://g.example", "fleet", "Fleet")
    assert options.grafana_target(inv, "http://127.0.0.1:3000", "a/b", "T") == (
        "http://127.0.0.1:3000",
        "a/b",
        "T",
    )
    assert options.grafana_target(None, "https://h.example", None, None) == (
        "https://h.example",
        "flobs-flintlock",
        "Flintlock",
    )


def test_grafana_target_without_any_url_is_a_usage_error() -> None:
    # An inventory always has central.grafana.url (the schema requires it).
    with pytest.raises(UsageError) as caught:
        options.grafana_target(None, None, "f", "F")
    assert (caught.value.message, caught.value.hint) == (
        "no Grafana URL",
        "pass --grafana-url URL, or -i INVENTORY to use its central.grafana.url",
    )


def test_grafana_target_refuses_credentials_in_the_url_without_showing_them() -> None:
    with pytest.raises(UsageError) as caught:
        options.grafana_target(None, "https://admin:pw-never-shown@g.example", None, None)
    assert caught.value.message == "--grafana-url must not contain credentials (user:password@)"
    assert "pw-never-shown" not in f"{caught.value.message} {caught.value.hint}"
