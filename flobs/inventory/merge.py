"""Deep merge of host variables, remembering where every value came from.

Precedence: built-in defaults < ``defaults`` < each group in the order the host
lists them < the host's own ``vars``. Mappings merge key by key; lists and scalars
replace; ``null`` replaces too (that is how an endpoint is switched off).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DocPath = tuple[str | int, ...]
VarPath = tuple[str, ...]

BUILTIN: DocPath = ("<built-in default>",)


@dataclass(frozen=True)
class Layer:
    """One source of variables and where it sits in the inventory document."""

    values: Mapping[str, Any]
    doc_path: DocPath  # e.g. ("groups", "eu1-a", "vars"); BUILTIN for the schema defaults


@dataclass
class Merged:
    values: dict[str, Any]
    origins: dict[VarPath, DocPath]  # var path -> document path of the value that won

    def origin(self, var_path: VarPath) -> DocPath:
        """The document path that set ``var_path`` (or its nearest set parent)."""
        probe = var_path
        while probe:
            if probe in self.origins:
                return self.origins[probe]
            probe = probe[:-1]
        return BUILTIN

    def is_builtin(self, var_path: VarPath) -> bool:
        return self.origin(var_path)[:1] == BUILTIN


def merge_layers(layers: list[Layer]) -> Merged:
    values: dict[str, Any] = {}
    origins: dict[VarPath, DocPath] = {}
    for layer in layers:
        _merge_into(values, layer.values, (), layer.doc_path, origins)
    return Merged(values, origins)


def overlay(base: Merged, layer: Layer) -> Merged:
    """``base`` with one more layer on top, sharing unchanged sub-trees with ``base``."""
    values = dict(base.values)
    origins = dict(base.origins)
    _merge_into(values, layer.values, (), layer.doc_path, origins)
    return Merged(values, origins)


def _merge_into(
    target: dict[str, Any],
    source: Mapping[str, Any],
    var_path: VarPath,
    doc_path: DocPath,
    origins: dict[VarPath, DocPath],
) -> None:
    for key, value in source.items():
        here = (*var_path, key)
        where = doc_path if doc_path == BUILTIN else (*doc_path, key)
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            copy = dict(current)  # copy-on-write: never mutate a shared parent layer
            _merge_into(copy, value, here, where, origins)
            target[key] = copy
            origins.setdefault(here, where)
        else:
            target[key] = _deep_copy(value)
            if isinstance(current, Mapping):
                # A replaced sub-tree takes the new origin for all of its leaves.
                for stale in [p for p in origins if p[: len(here)] == here and p != here]:
                    del origins[stale]
            origins[here] = where
            if isinstance(value, Mapping):
                _record(value, here, where, origins)


def _record(
    value: Mapping[str, Any], var_path: VarPath, doc_path: DocPath, origins: dict[VarPath, DocPath]
) -> None:
    for key, sub in value.items():
        here = (*var_path, key)
        where = doc_path if doc_path == BUILTIN else (*doc_path, key)
        origins[here] = where
        if isinstance(sub, Mapping):
            _record(sub, here, where, origins)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
