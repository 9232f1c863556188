"""`--help` of every command, through Typer's CliRunner: an example, the exit codes,
no `<bool>` placeholders on flags, OUT and INVENTORY named the same way everywhere,
enums shown as their choices, and every option declared one way (Annotated)."""

from __future__ import annotations

import inspect
import re

import pytest
import typer.main
from typer.models import ArgumentInfo, OptionInfo
from typer.testing import CliRunner

from flobs.cli import _register, app
from flobs.commands.validate import ReportFormat
from flobs.report import FORMATS

_register()
COMMANDS = [
    "generate",
    "validate",
    "push-dashboards",
    "pull-dashboards",
    "verify",
    "simulate",
    "demo",
]


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_an_example_and_every_exit_code(command: str) -> None:
    text = _help(*([command] if command else []))
    (example,) = re.findall(r"Example: (.*?)\s*$", text, re.MULTILINE)
    assert (
        example.split(" && ")[0]
        .replace("GRAFANA_TOKEN=... ", "")
        .startswith(f"flobs {command or 'generate'} ")
    )
    codes = " ".join(text.split()).split("Exit codes: ", 1)[1]
    for code in ("0 ", "1 ", "2 ", "3 ", "130 interrupted"):
        if command == "simulate" and code == "1 ":
            continue  # simulate has no findings to report
        assert code in codes, (command, codes[:300])


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_no_type_placeholders_for_flags_or_named_arguments(command: str) -> None:
    text = _help(*([command] if command else []))
    assert "<bool>" not in text
    assert "<Path>" not in text and "<path>" not in text and "<dir>" not in text
    assert "{" not in text.split("\n", 3)[1]  # the usage line: OUT, not {out}


@pytest.mark.parametrize(
    ("command", "usage", "metavars"),
    [
        ("generate", "Usage: flobs generate [OPTIONS]", ["-i      INVENTORY", "-o      OUT"]),
        ("validate", "Usage: flobs validate [OPTIONS] [OUT]", ["-i      INVENTORY"]),
        ("push-dashboards", "Usage: flobs push-dashboards [OPTIONS] OUT", ["-i      INVENTORY"]),
        ("pull-dashboards", "Usage: flobs pull-dashboards [OPTIONS] OUT", ["-i      INVENTORY"]),
        ("verify", "Usage: flobs verify [OPTIONS]", ["-i      INVENTORY", "--out           OUT"]),
    ],
)
def test_out_and_inventory_are_named_the_same_everywhere(
    command: str, usage: str, metavars: list[str]
) -> None:
    text = _help(command)
    assert usage in text
    for metavar in metavars:
        assert re.search(re.escape(metavar).replace(r"\ \ \ \ \ \ ", r"\s+"), text), metavar


@pytest.mark.parametrize(
    ("command", "choices"),
    [
        ("validate", "<text|json|junit|github>"),
        ("validate", "<auto|require|off>"),
        ("push-dashboards", "<text|json>"),
        ("verify", "<text|json|html>"),
        ("pull-dashboards", "<text|json>"),
        ("demo", "<federation|remote_write>"),
    ],
)
def test_enums_are_shown_as_their_choices(command: str, choices: str) -> None:
    text = _help(command)
    assert choices in text
    assert "<str>" not in text


def test_report_format_choices_are_the_reporters() -> None:
    assert tuple(ReportFormat) == FORMATS


@pytest.mark.parametrize("command", COMMANDS)
def test_options_are_declared_one_way(command: str) -> None:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    callback = click_command.callback.__wrapped__
    for name, param in inspect.signature(callback).parameters.items():
        # Annotated[..., typer.Option(...)]: the default is a plain value, never an OptionInfo.
        assert not isinstance(param.default, OptionInfo | ArgumentInfo), (command, name)
        assert "Annotated[" in str(param.annotation), (command, name)
