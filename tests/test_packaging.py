"""The wheel must contain every package, template and schema (see `make test-built-package`)."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "flobs").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    assert {"flobs.templates", "flobs.schemas"} <= listed
    assert config["package-dir"] == {"flobs.templates": "templates", "flobs.schemas": "schemas"}


def test_every_schema_and_template_matches_a_package_data_glob() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    for path in (REPO / "schemas").iterdir():
        if path.suffix != ".py":
            assert any(path.match(g) for g in data["flobs.schemas"]), path.name
    for path in (REPO / "templates").rglob("*"):
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts:
            assert any(path.match(g) for g in data["flobs.templates"]), path.name
