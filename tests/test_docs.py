"""The README's generated sections match the code (schema, dashboards, checks, alerts)."""

from __future__ import annotations

from flobs import docgen, resources
from flobs.inventory.build import ALERT_DEFAULTS
from tests.conftest import REPO


def test_readme_generated_sections_are_current() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert docgen.render(text) == text, "README is stale: run `make docs`"


def _keys(schema: dict, prefix: str = "") -> set[str]:  # type: ignore[type-arg]
    out = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if sub.get("type") == "object":
            out |= _keys(sub, path)
    return out


def test_every_inventory_variable_is_documented() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    schema = resources.schema("inventory.schema.json")
    for key in _keys(schema["$defs"]["vars"]) | _keys(schema["properties"]["central"], "central"):
        assert f"| `{key}` |" in readme, f"{key} is missing from the README reference"
    for key in ALERT_DEFAULTS:
        assert f"| `{key}` |" in readme
