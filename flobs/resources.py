"""Access to the files shipped with flobs (schemas, templates) via importlib.resources."""

from __future__ import annotations

import hashlib
import json
import math
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


def _max_duration_keyword(
    validator: Any, limit: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """``maxDuration``: a Prometheus duration no longer than ``limit`` (our own keyword)."""
    from flobs.promtime import parse_duration

    if not validator.is_type(instance, "string"):
        return
    got, most = parse_duration(instance), parse_duration(limit)
    if got is not None and most is not None and got > most:
        yield ValidationError(f"{instance!r} is longer than {limit}")


def _is_finite_number(checker: Any, instance: Any) -> bool:
    # NaN passes every `minimum`/`maximum` (comparisons with it are false) and infinity
    # is no threshold: neither is a number any setting can use.
    return (
        isinstance(instance, int | float)
        and not isinstance(instance, bool)
        and math.isfinite(instance)
    )


def _is_integer(checker: Any, instance: Any) -> bool:
    if isinstance(instance, float):
        return math.isfinite(instance) and instance.is_integer()
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = validators.extend(
    Draft202012Validator,
    {"pattern": _pattern_keyword, "maxDuration": _max_duration_keyword},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": _is_finite_number, "integer": _is_integer}
    ),
)


# Descending into a subschema is jsonschema's cost (a new validator object, a resolver
# and a resource per step: half the time of validating 10,000 hosts' files, measured).
# Hosts' files repeat the same subtrees with only a few values changed, so the errors
# of (subschema, subtree) are kept: the same subtree under the same subschema has the
# same errors. Our schemas have one `$id` (the root) and no `$dynamicRef` or
# `unevaluated*`, so a subschema's errors do not depend on how it was reached. The
# subtree (or scalar: most values repeat too) is keyed by its repr, which tells 1, 1.0,
# True and "1" apart and keeps key order (additionalProperties reports extras in order).
_DESCENT_MEMO: dict[tuple[int, bytes], list[ValidationError]] = {}
_DESCENT_MEMO_MAX = 300_000
_NO_ERRORS: list[ValidationError] = []  # shared, never changed
_plain_descend = _Validator.descend


def _memo_descend(
    self: Any,
    instance: Any,
    schema: Any,
    path: Any = None,
    schema_path: Any = None,
    resolver: Any = None,
) -> Iterator[ValidationError]:
    if resolver is not None or isinstance(schema, bool):
        yield from _plain_descend(self, instance, schema, path, schema_path, resolver)
        return
    key = (id(schema), hashlib.blake2b(repr(instance).encode(), digest_size=16).digest())
    errors = _DESCENT_MEMO.get(key)
    if errors is None:
        if len(_DESCENT_MEMO) >= _DESCENT_MEMO_MAX:
            _DESCENT_MEMO.clear()
        # Most subtrees are valid: they share one empty list (memory, at 10,000 hosts).
        errors = _DESCENT_MEMO[key] = list(_plain_descend(self, instance, schema)) or _NO_ERRORS
    for error in errors:
        # A copy: the callers above prepend their own path to what they are given.
        fresh = ValidationError.create_from(error)
        if path is not None:
            fresh.path.appendleft(path)
        if schema_path is not None:
            fresh.schema_path.appendleft(schema_path)
        yield fresh


_Validator.descend = _memo_descend


@cache
def validator(name: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for ``schemas/<name>`` with ECMA-262 pattern semantics."""
    built: Draft202012Validator = _Validator(schema(name))
    return built


def template_text(name: str) -> str:
    """The source of ``templates/<name>``."""
    return resources.files("flobs.templates").joinpath(name).read_text(encoding="utf-8")
