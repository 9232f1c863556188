"""Access to the files shipped with flobs (schemas, templates) via importlib.resources."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError


@cache
def schema(name: str) -> dict[str, Any]:
    """Load ``schemas/<name>`` (a JSON Schema) from the installed package."""
    text = resources.files("flobs.schemas").joinpath(name).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# JSON Schema patterns are ECMA-262 regexes, where `$` is the end of the input. In
# Python's `re`, `$` also matches before a trailing newline, so "h1\n" would pass
# "^[a-z0-9]+$" and become a directory name with a newline in it. Translate `$`
# (outside classes, unescaped) to `\Z` so the schemas mean what they say.
@cache
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    in_class = escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif in_class:
            out.append(ch)
            in_class = ch != "]"
        elif ch == "[":
            out.append(ch)
            in_class = True
        elif ch == "$":
            out.append(r"\Z")
        else:
            out.append(ch)
    return re.compile("".join(out))


def _pattern_keyword(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern_keyword})


@cache
def validator(name: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for ``schemas/<name>`` with ECMA-262 pattern semantics."""
    built: Draft202012Validator = _Validator(schema(name))
    return built


def template_text(name: str) -> str:
    """The source of ``templates/<name>``."""
    return resources.files("flobs.templates").joinpath(name).read_text(encoding="utf-8")
