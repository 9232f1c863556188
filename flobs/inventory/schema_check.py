"""JSON Schema validation of the raw inventory, with errors people can act on."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from flobs import resources

# Friendly words for the shared definitions, keyed by their $ref target.
_DEF_HELP = {
    "duration": ("is not a Prometheus duration", "write it like 15s, 1m30s, 2h or 7d"),
    "endpoint": ("is not a host:port endpoint", "write it like 127.0.0.1:9100 or [::1]:9100"),
    "label_name": (
        "is not a valid Prometheus label name",
        "label names match [a-zA-Z_][a-zA-Z0-9_]* and must not start with __",
    ),
}


# What each schema pattern means, in words (the regex itself helps nobody).
_PATTERN_WORDS: dict[str, tuple[str, str]] = {
    "^https?://": (
        "is not an http:// or https:// URL",
        "write the whole URL with its scheme, like https://grafana.example",
    ),
    "^[^\\s/:]+$|^[0-9a-fA-F:]+$": (
        "is not a bare IP address or DNS name",
        "write only the address, like 10.0.0.1, fl-01.example or fd00::1: "
        "no scheme, port, path or spaces",
    ),
    "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$": (
        "is not a valid host name",
        "up to 63 letters, digits, `_`, `.` and `-`, starting with a letter or digit",
    ),
    "^[0-9]+\\.[0-9]+(\\.[0-9]+)?$": (
        "is not a version number",
        'write it like 2.42 or 3.1.0 (quote it so YAML keeps it text: "2.50")',
    ),
    "^/": ("is not an absolute path", "start it with /"),
    "^[a-zA-Z0-9_-]{1,40}$": (
        "is not a valid Grafana uid",
        "1 to 40 letters, digits, `_` or `-`",
    ),
    "^[A-Za-z_][A-Za-z0-9_]*$": (
        "is not an environment variable name",
        "letters, digits and `_`, not starting with a digit",
    ),
    "^[A-Za-z0-9:_.@\\\\-]+$": (
        "is not a systemd unit name",
        "letters, digits, `:`, `_`, `.`, `@`, `-` and `\\` escapes, like flintlockd.service",
    ),
}

_NOT_FINITE = "NaN and infinity are no threshold or size: write a number"
_RANGE_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

# Hints for `maxDuration`, by limit.
_LONGEST = {
    "100y": "Prometheus cannot represent durations beyond 292 years; write something like 30d",
    "7d": "an alert that waits longer than a week cannot warn anyone in time; "
    "write something like 10m or 1h",
}


def _number(value: Any) -> str:
    """A number as the inventory would spell it (YAML's .nan / .inf included)."""
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def _range(schema: dict[str, Any]) -> str:
    """``must be between 1 and 100`` and the like, from the schema's bounds."""
    low = schema.get("minimum")
    low_x = schema.get("exclusiveMinimum")
    high = schema.get("maximum")
    high_x = schema.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f"must be between {_number(low)} and {_number(high)}"
    parts = []
    if low is not None:
        parts.append(f"at least {_number(low)}")
    if low_x is not None:
        parts.append(f"above {_number(low_x)}")
    if high is not None:
        parts.append(f"at most {_number(high)}")
    if high_x is not None:
        parts.append(f"below {_number(high_x)}")
    return "must be " + " and ".join(parts)


_TYPE_HINTS = {
    "boolean": "write true or false (unquoted)",
    "integer": "write a whole number, unquoted",
    "number": "write a number, unquoted",
    "string": "write text; quote it if YAML would read it as something else",
    "object": "write a mapping (key: value lines)",
    "array": "write a list ([a, b] or - items)",
}


@cache
def validator() -> Draft202012Validator:
    return resources.validator("inventory.schema.json")


def schema_default_vars() -> dict[str, Any]:
    """The built-in host variables: every ``default`` under ``$defs.vars``."""
    return _defaults(resources.schema("inventory.schema.json")["$defs"]["vars"])


def _defaults(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in node.get("properties", {}).items():
        if "default" in sub:
            out[key] = sub["default"]
        elif sub.get("type") == "object" and "properties" in sub:
            nested = _defaults(sub)
            if nested and not sub.get("required"):
                out[key] = nested
    return out


SchemaProblem = tuple[tuple[str | int, ...], str, str | None, bool]


def schema_problems(doc: Any) -> Iterator[SchemaProblem]:
    """Yield ``(path, message, hint, at_key)`` per violation; ``at_key`` locates the key."""
    for err in sorted(validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        for path, message, hint in _explain(err):
            at_key = (
                message.startswith("unknown key") or "propertyNames" in err.absolute_schema_path
            )
            yield path, message, hint, at_key


def _explain(err: ValidationError) -> Iterator[tuple[tuple[str | int, ...], str, str | None]]:
    path = tuple(err.absolute_path)
    kind = err.validator
    schema = err.schema if isinstance(err.schema, dict) else {}
    if kind == "additionalProperties" and isinstance(err.instance, dict):
        known = sorted(schema.get("properties", {}))
        for key in sorted(set(err.instance) - set(known)):
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = (
                f"did you mean `{close[0]}`?"
                if close
                else (f"known keys here: {', '.join(known)}" if known else None)
            )
            yield (*path, key), f"unknown key `{key}`", hint
        return
    if kind == "required":
        missing = [k for k in err.validator_value if k not in (err.instance or {})]
        for key in missing:
            yield path, f"missing required key `{key}`", _describe(schema, key)
        return
    if kind in ("anyOf", "oneOf") and err.context:
        # Report the branch that got furthest instead of "is not valid under any".
        best = max(err.context, key=lambda e: len(e.absolute_path))
        if best.validator != "type":
            yield from _explain(best)
            return
        if isinstance(err.instance, float) and not math.isfinite(err.instance):
            yield path, f"must be a finite number, not {_number(err.instance)}", _NOT_FINITE
            return
        types = [str(e.validator_value) for e in err.context if e.validator == "type"]
        yield path, f"must be {' or '.join(types) if types else 'a valid value'}", None
        return
    ref = _ref_name(err)
    if "propertyNames" in err.absolute_schema_path and isinstance(err.instance, str):
        # jsonschema reports a bad key at its parent; point at the key itself.
        what, hint = (
            _DEF_HELP["label_name"] if ref == "label_name" else ("is not a valid name", None)
        )
        yield (*path, err.instance), f"{err.instance!r} {what}", hint
        return
    if ref in _DEF_HELP and kind in ("pattern", "type"):
        what, hint = _DEF_HELP[ref]
        yield path, f"{err.instance!r} {what}", hint
        return
    if kind == "pattern" and path and path[-1] == "__propertyNames__":
        yield path, f"{err.instance!r} is not a valid name", None
        return
    if kind == "pattern" and err.validator_value in _PATTERN_WORDS:
        # People read words, not regexes: say what the value must look like.
        what, hint = _PATTERN_WORDS[err.validator_value]
        yield path, f"{err.instance!r} {what}", hint
        return
    if kind == "enum":
        choices = [str(c) for c in err.validator_value]
        close = difflib.get_close_matches(str(err.instance), choices, n=1)
        yield (
            path,
            f"{err.instance!r} is not one of: {', '.join(choices)}",
            f"did you mean `{close[0]}`?" if close else None,
        )
        return
    if kind == "maxDuration":
        yield (
            path,
            f"{err.instance!r} is longer than {err.validator_value}",
            _LONGEST.get(
                str(err.validator_value), f"write a duration of at most {err.validator_value}"
            ),
        )
        return
    if kind in _RANGE_KEYWORDS:
        yield (
            path,
            f"{_number(err.instance)} is out of range: {_range(schema)}",
            schema.get("description"),
        )
        return
    if kind == "type" and isinstance(err.instance, float) and not math.isfinite(err.instance):
        yield (
            path,
            f"must be a finite number, not {_number(err.instance)}",
            _NOT_FINITE,
        )
        return
    if kind == "const":
        yield (
            path,
            f"must be {err.validator_value!r}, not {err.instance!r}",
            f"this version of flobs reads {err.validator_value!r}",
        )
        return
    if kind == "type":
        yield (
            path,
            f"must be of type {err.validator_value}, not {type(err.instance).__name__}",
            _TYPE_HINTS.get(str(err.validator_value), schema.get("description")),
        )
        return
    yield path, err.message, schema.get("description")


def _ref_name(err: ValidationError) -> str | None:
    """The $defs name whose schema failed, if the failure was inside a shared definition."""
    for part in reversed(list(err.absolute_schema_path)):
        if part in _DEF_HELP:
            return str(part)
    desc = err.schema.get("description", "") if isinstance(err.schema, dict) else ""
    if desc.startswith("A Prometheus duration"):
        return "duration"
    if desc.startswith("host:port"):
        return "endpoint"
    if isinstance(err.schema, dict) and err.schema.get("pattern") == "^[a-zA-Z_][a-zA-Z0-9_]*$":
        return "label_name"
    return None


def _describe(schema: dict[str, Any], key: str) -> str | None:
    sub = schema.get("properties", {}).get(key, {})
    desc = sub.get("description")
    return f"`{key}`: {desc}" if desc else None
