"""Regenerate the README's generated sections from the code, so they cannot drift.

``python -m flobs.docgen README.md`` rewrites every block between
``<!-- BEGIN generated:NAME -->`` and ``<!-- END generated:NAME -->``;
``--check`` exits 1 when the file is not current (the test suite runs that).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flobs import resources
from flobs.inventory.build import ALERT_DEFAULTS


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | dict):
        import json

        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def _kind(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_kind(s) for s in schema["anyOf"])
    return (str(schema.get("type", "")) or "any") + _bounds(schema)


def _bounds(schema: dict[str, Any]) -> str:
    """`` (≥ 1, ≤ 100)``, `` (> 0, ≤ 1)``: the range the schema allows, if it has one."""
    parts = []
    for key, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in schema:
            parts.append(f"{sign} {schema[key]:,}".replace(",", " "))
    return f" ({', '.join(parts)})" if parts else ""


def _rows(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> list[str]:
    rows = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        if sub.get("$ref") == "#/$defs/vars":
            rows.append(f"| `{path}` | vars | | Host variables (see below). |")
            continue
        if sub.get("type") == "object" and "properties" in sub:
            rows.append(f"| `{path}` | object | | {_cell(sub.get('description', ''))} |")
            rows.extend(_rows(sub, path, defs))
            continue
        default = _default(sub["default"]) if "default" in sub else ""
        rows.append(
            f"| `{path}` | {_kind(sub)} | {default} | {_cell(sub.get('description', ''))} |"
        )
    return rows


def inventory_reference() -> str:
    schema = resources.schema("inventory.schema.json")
    defs = schema["$defs"]
    head = "| key | type | default | meaning |\n|---|---|---|---|\n"
    top = [r for r in _rows(schema, "", defs) if not r.startswith("| `hosts`")]
    host = schema["properties"]["hosts"]["items"]
    hosts = _rows(host, "hosts[]", defs)
    group = schema["properties"]["groups"]["additionalProperties"]
    groups = _rows(group, "groups.<name>", defs)
    vars_rows = _rows(defs["vars"], "", defs)
    return (
        "### Top level, hosts and groups\n\n"
        + head
        + "\n".join(top + hosts + groups)
        + "\n\n### Host variables (`defaults`, `groups.<name>.vars`, `hosts[].vars`)\n\n"
        + head
        + "\n".join(vars_rows)
        + "\n\n"
        "Types: `duration` is a Prometheus duration (`15s`, `1m30s`) of at most 100y; "
        "`alert_duration` one of at most 7d; `endpoint` is `host:port` (`[::1]:9100` for "
        "IPv6). Numbers are finite: `.nan` and `.inf` are refused.\n"
    )


def alert_settings() -> str:
    spec = resources.schema("inventory.schema.json")["properties"]["central"]["properties"][
        "alerts"
    ]["properties"]

    def allowed(sub: dict[str, Any]) -> str:
        if "$ref" in sub:
            return "duration"
        low = (
            f"> {sub['exclusiveMinimum']:g}"
            if "exclusiveMinimum" in sub
            else f"≥ {sub['minimum']:g}"
        )
        return f"{low}, ≤ {sub['maximum']:g}"

    rows = "\n".join(
        f"| `{k}` | `{v}` | {allowed(spec[k])} | {spec[k]['description']} |"
        for k, v in sorted(ALERT_DEFAULTS.items())
    )
    return (
        "| `central.alerts.<key>` | default | allowed | what it sets |\n|---|---|---|---|\n"
        + rows
        + "\n"
    )


def _dashboards() -> str:
    from flobs.artifacts.dashboards import dashboards_markdown

    return dashboards_markdown().rstrip("\n") + "\n"


def _checks() -> str:
    from flobs.validate import checks_markdown

    return checks_markdown().rstrip("\n") + "\n"


def validate_options() -> str:
    """A Markdown table of `flobs validate`'s options, from the command itself."""
    import typer

    import flobs.commands.validate  # noqa: F401  (registers the command)
    from flobs.cli import app

    # typer 0.29 carries its own click (typer._click): read the command's parameters.
    command = typer.main.get_command(app).commands["validate"]  # type: ignore[attr-defined]
    rows = ["| option | what it does |", "|---|---|"]
    for param in command.params:
        if param.param_type_name != "option" or param.hidden or param.name == "help":
            continue
        names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        if param.metavar:
            names += f" `{param.metavar}`"
        rows.append(f"| {names} | {_cell(' '.join((param.help or '').split()))} |")
    return "\n".join(rows) + "\n"


SECTIONS: dict[str, Callable[[], str]] = {
    "inventory-reference": inventory_reference,
    "alert-settings": alert_settings,
    "dashboards": _dashboards,
    "checks": _checks,
    "validate-options": validate_options,
}

_BLOCK = re.compile(
    r"(<!-- BEGIN generated:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END generated:(?P=name) -->)",
    re.S,
)


def render(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in SECTIONS:
            raise KeyError(f"unknown generated section {name!r}")
        return m.group(1) + SECTIONS[name]() + m.group(4)

    return _BLOCK.sub(repl, text)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(a) for a in argv if not a.startswith("--")] or [Path("README.md")]
    stale = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    if check and stale:
        sys.stderr.write(
            f"{', '.join(map(str, stale))}: generated sections are stale; run `make docs`\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
