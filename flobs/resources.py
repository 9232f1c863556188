"""Access to the files shipped with flobs (schemas, templates) via importlib.resources."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def schema(name: str) -> dict[str, Any]:
    """Load ``schemas/<name>`` (a JSON Schema) from the installed package."""
    text = resources.files("flobs.schemas").joinpath(name).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def template_text(name: str) -> str:
    """The source of ``templates/<name>``."""
    return resources.files("flobs.templates").joinpath(name).read_text(encoding="utf-8")
