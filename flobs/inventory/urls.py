"""URLs in the inventory carry no credentials.

A ``https://user:pass@host`` URL would be copied into promtail/alloy configs, the
Grafana datasource file, rule annotations and every report that names the URL.
Credentials have their own keys, read from files on the machine that uses them
(``bearer_token_file``, ``basic_auth.password_file``) or from the environment at
push/verify time; so a URL with userinfo is refused where it is written.

The URL keys are found by walking the inventory schema, so a URL key added to the
schema is covered without touching this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from flobs import resources
from flobs.redact import has_userinfo, register_url

DocPath = tuple[str | int, ...]
ANY = "*"  # any key of a mapping or any item of a list

HINT = (
    "remove `user:password@` from the URL; give the credentials as bearer_token_file or "
    "basic_auth {username, password_file} next to it (files on the machine that uses "
    "them), or for push-dashboards/verify in the environment ($GRAFANA_TOKEN, "
    "$FLOBS_PROMETHEUS_TOKEN …)"
)


def _is_url_key(key: str, schema: dict[str, Any]) -> bool:
    if schema.get("type") != "string":
        return False
    pattern = str(schema.get("pattern", ""))
    return (
        key == "url"
        or key.endswith("_url")
        or schema.get("format") == "uri"
        or pattern.startswith("^https?://")
    )


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def url_paths_in(schema: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    """Every path (``*`` for any key or index) at which the schema holds a URL string."""
    found: list[tuple[str, ...]] = []

    def walk(node: Any, path: tuple[str, ...], depth: int) -> None:
        if not isinstance(node, dict) or depth > 32:
            return
        node = _resolve(node, schema)
        for key, sub in (node.get("properties") or {}).items():
            sub_node = _resolve(sub, schema) if isinstance(sub, dict) else {}
            if _is_url_key(key, sub_node):
                found.append((*path, key))
            items = sub_node.get("items")
            if isinstance(items, dict) and _is_url_key(key, _resolve(items, schema)):
                found.append((*path, key, ANY))  # a list of URLs, e.g. alertmanager.urls
            walk(sub, (*path, key), depth + 1)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, (*path, ANY), depth + 1)
        items = node.get("items")
        if isinstance(items, dict):
            walk(items, (*path, ANY), depth + 1)
        for branch in (*node.get("anyOf", ()), *node.get("oneOf", ()), *node.get("allOf", ())):
            walk(branch, path, depth + 1)

    walk(schema, (), 0)
    return tuple(dict.fromkeys(found))


@cache
def url_paths() -> tuple[tuple[str, ...], ...]:
    return url_paths_in(resources.schema("inventory.schema.json"))


def _values_at(
    doc: Any, pattern: tuple[str, ...], at: DocPath = ()
) -> Iterator[tuple[DocPath, Any]]:
    if not pattern:
        yield at, doc
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(doc, dict):
        keys = list(doc) if head == ANY else [head] if head in doc else []
        for key in keys:
            yield from _values_at(doc[key], rest, (*at, key))
    elif isinstance(doc, list) and head == ANY:
        for index, item in enumerate(doc):
            yield from _values_at(item, rest, (*at, index))


def userinfo_problems(doc: Any) -> Iterator[tuple[DocPath, str, str]]:
    """``(path, message, hint)`` for every URL value with credentials in it, or that
    cannot be parsed at all (a bad port, no host).

    The credentials are also registered with the redaction layer, so no other
    message (a schema error that quotes the value, a traceback) can show them.
    """
    for pattern in url_paths():
        for path, value in _values_at(doc, pattern):
            if not isinstance(value, str):
                continue  # the schema reports the type
            if has_userinfo(value):
                register_url(value)
                yield path, "a URL must not contain credentials (user:password@)", HINT
                continue
            if not value.startswith(("http://", "https://")):
                continue  # the schema's pattern reports it, where it has one
            broken = _broken(value)
            if broken:
                yield (
                    path,
                    f"not a valid URL: {broken}",
                    "for example https://host.example:9090/path",
                )


def _broken(url: str) -> str | None:
    """Why ``url`` cannot be requested, or None (what httpx would trip over later)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number or out of range
    except ValueError as err:
        return str(err)
    if not parts.hostname:
        return "it has no host"
    if any(c.isspace() for c in parts.netloc):
        return "its host contains whitespace"  # (a path may: it is escaped when used)
    return None
