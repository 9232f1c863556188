"""YAML in and out.

Reading: YAML 1.2 core-schema semantics with the position of every node, so errors
can say ``file:line:col``. Nodes are composed by libyaml through PyYAML when it is
available (about six times faster than a pure-Python parser on a 10,000-host
inventory) and by ruamel.yaml otherwise; both yield nodes with marks, and the
scalars are resolved here, identically for both, by the YAML 1.2 core rules (so
``on``, ``yes`` and ``0755`` stay strings, as ruamel and Prometheus' Go parser agree).

Writing: a small block-style emitter for plain data (dict, list, str, int, float,
bool, None). Anything that is not unmistakably a plain string is double-quoted
with JSON-compatible escapes, so a value containing quotes, newlines, ``{{``,
``$``, ``#`` or unicode reads back unchanged in every YAML parser we target.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flobs.problems import Problem, Severity

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based


class YamlSyntaxError(Exception):
    """The text is not YAML, or it breaks a rule we enforce (duplicate key)."""

    def __init__(self, message: str, mark: Mark | None, path: Path_ = ()) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.path = path

    def as_problem(self, file: str, check_id: str = "yaml") -> Problem:
        """The error as a located problem, the form every command reports."""
        return Problem(
            file,
            self.mark.line if self.mark else None,
            self.mark.col if self.mark else None,
            check_id,
            Severity.ERROR,
            f"invalid YAML: {self.message}",
            "fix the YAML syntax at this position",
            format_path(self.path) if self.path else None,
        )


@dataclass
class Positions:
    """Where each value (and each mapping key) of a loaded document starts."""

    values: dict[Path_, Mark]
    keys: dict[Path_, Mark]

    def of(self, path: Path_) -> Mark | None:
        """The closest known position: the value, else its key, else the nearest parent."""
        probe = tuple(path)
        while True:
            if probe in self.values:
                return self.values[probe]
            if probe in self.keys:
                return self.keys[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def key_of(self, path: Path_) -> Mark | None:
        return self.keys.get(tuple(path)) or self.of(path)


def format_path(path: Path_) -> str:
    """``('hosts', 2, 'vars', 'x')`` → ``$.hosts[2].vars.x`` (odd keys are quoted)."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


# --------------------------------------------------------------------------- reading

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_BOOL_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

_MERGE_KEY = "<<"


def _resolve_plain(text: str) -> Any:
    """YAML 1.2 core schema resolution of a plain (unquoted) scalar."""
    if _NULL.fullmatch(text):
        return None
    if _BOOL_TRUE.fullmatch(text):
        return True
    if _BOOL_FALSE.fullmatch(text):
        return False
    if _INT10.fullmatch(text):
        return int(text, 10)
    if _INT8.fullmatch(text):
        return int(text[2:], 8)
    if _INT16.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def _mark(node: Any) -> Mark:
    m = node.start_mark
    return Mark(m.line + 1, m.column + 1)


class _Converter:
    """Turns a composed node tree (PyYAML's or ruamel's) into plain data + positions."""

    def __init__(self) -> None:
        self.values: dict[Path_, Mark] = {}
        self.keys: dict[Path_, Mark] = {}

    def convert(self, node: Any, path: Path_) -> Any:
        self.values[path] = _mark(node)
        kind = node.id  # "scalar" | "sequence" | "mapping" for both libraries
        if kind == "scalar":
            # Plain scalars resolve by the YAML 1.2 core rules; quoted and block
            # scalars are always strings. Explicit tags (`!!str`) are not supported.
            if node.style in (None, ""):
                return _resolve_plain(node.value)
            return node.value
        if kind == "sequence":
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        if kind == "mapping":
            return self._mapping(node, path)
        raise YamlSyntaxError(f"unsupported YAML node {kind!r}", _mark(node), path)

    def _mapping(self, node: Any, path: Path_) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.id != "scalar":
                raise YamlSyntaxError("mapping keys must be plain strings", _mark(key_node), path)
            if key_node.value == _MERGE_KEY and key_node.style in (None, ""):
                # YAML merge key (`<<: *defaults`): explicit keys win over merged ones.
                sources = value_node.value if value_node.id == "sequence" else [value_node]
                for source in sources:
                    data = self.convert(source, path)
                    if not isinstance(data, dict):
                        raise YamlSyntaxError("`<<` must merge a mapping", _mark(value_node), path)
                    for k, v in data.items():
                        merged.setdefault(k, v)
                continue
            key = self.convert(key_node, (*path, "\x00key"))
            del self.values[(*path, "\x00key")]
            if not isinstance(key, str):
                key = key_node.value  # `1: x` or `true: x` keys are read as their text
            if key in result:
                raise YamlSyntaxError(
                    f"duplicate key {key!r} (first at line {self.keys[(*path, key)].line})",
                    _mark(key_node),
                    (*path, key),
                )
            self.keys[(*path, key)] = _mark(key_node)
            result[key] = self.convert(value_node, (*path, key))
        for k, v in merged.items():
            result.setdefault(k, v)
        return result


@lru_cache(maxsize=1)
def _compose_loader() -> Any:
    """libyaml's parser with a no-op resolver: we resolve scalars ourselves (YAML 1.2),
    so PyYAML's Python-level 1.1 resolver call per node is pure overhead."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dependency
        return None
    try:
        from yaml._yaml import CParser
    except ImportError:  # PyYAML built without libyaml: ruamel takes over
        return None

    class ComposeOnly(CParser, yaml.resolver.BaseResolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.resolver.BaseResolver.__init__(self)

        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            return ""

    return ComposeOnly


def _compose(text: str) -> Any:
    try:
        import yaml

        loader_cls = _compose_loader()
        if loader_cls is not None:
            try:
                return yaml.compose(text, Loader=loader_cls)
            except yaml.reader.ReaderError as err:
                raise YamlSyntaxError(
                    _unacceptable(err.character),
                    _mark_at(text, err.position),
                ) from err
            except yaml.MarkedYAMLError as err:
                mark = err.problem_mark or err.context_mark
                raise YamlSyntaxError(
                    " ".join(x for x in (err.context, err.problem) if x) or "invalid YAML",
                    Mark(mark.line + 1, mark.column + 1) if mark else None,
                ) from err
    except ImportError:  # pragma: no cover - PyYAML is a dependency; kept for robustness
        pass
    return _compose_ruamel(text)


def _unacceptable(character: int | str) -> str:
    code = character if isinstance(character, int) else ord(character)
    return f"character U+{code:04X} is not allowed in YAML; remove it or write it as \\u{code:04x}"


def _mark_at(text: str, position: int) -> Mark:
    before = text[:position]
    return Mark(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)


def _compose_ruamel(text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.reader import ReaderError

    try:
        return YAML(typ="safe", pure=True).compose(text)
    except ReaderError as err:
        raise YamlSyntaxError(_unacceptable(err.character), _mark_at(text, err.position)) from err
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise YamlSyntaxError(
            " ".join(x for x in (err.context, err.problem) if x) or "invalid YAML",
            Mark(mark.line + 1, mark.column + 1) if mark else None,
        ) from err


def load_with_positions(text: str, *, backend: str = "auto") -> tuple[Any, Positions]:
    """Parse one YAML document; return ``(data, positions)``.

    ``backend`` is ``auto`` (libyaml when present), ``libyaml`` or ``ruamel``; the
    explicit ones exist so tests can prove both back ends agree.
    """
    node = _compose_ruamel(text) if backend == "ruamel" else _compose(text)
    conv = _Converter()
    if node is None:
        return None, Positions({(): Mark(1, 1)}, {})
    data = conv.convert(node, ())
    return data, Positions(conv.values, conv.keys)


def load(text: str) -> Any:
    """Parse YAML into plain data (YAML 1.2 core semantics), without positions.

    Same semantics and errors as ``load_with_positions``, about twice as fast: no
    path tuples and no position maps are built.
    """
    node = _compose(text)
    return None if node is None else _fast(node)


def _fast(node: Any) -> Any:
    kind = node.id
    if kind == "scalar":
        return _resolve_plain(node.value) if node.style in (None, "") else node.value
    if kind == "sequence":
        return [_fast(item) for item in node.value]
    if kind != "mapping":
        raise YamlSyntaxError(f"unsupported YAML node {kind!r}", _mark(node))
    result: dict[Any, Any] = {}
    merged = False
    for key_node, value_node in node.value:
        if key_node.id != "scalar" or (
            key_node.value == _MERGE_KEY and key_node.style in (None, "")
        ):
            merged = True
            break
        key = key_node.value if key_node.style not in (None, "") else _resolve_plain(key_node.value)
        if not isinstance(key, str):
            key = key_node.value
        if key in result:
            merged = True  # let the full converter report the duplicate with its position
            break
        result[key] = _fast(value_node)
    if merged:
        # Rare shapes (merge keys, duplicates, complex keys): the full converter
        # implements them once, with positions for its errors.
        return _Converter().convert(node, ())
    return result


# --------------------------------------------------------------------------- writing

_PLAIN_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_PLAIN_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$")
# Words some YAML 1.1 parsers (Go's yaml.v2, PyYAML) read as booleans or null.
_RESERVED = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"])
# Characters YAML forbids raw or that some parsers treat as line breaks.
_ESCAPE_EXTRA = {
    c: f"\\u{c:04x}" for c in [*range(0x7F, 0xA0), 0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF]
}


def quote(text: str) -> str:
    """A YAML double-quoted scalar that every YAML 1.1/1.2 parser reads back as ``text``."""
    return json.dumps(text, ensure_ascii=False).translate(_ESCAPE_EXTRA)


@lru_cache(maxsize=1 << 16)
def _string(value: str) -> str:
    # Generated configs repeat the same keys and values on every host; caching the
    # decision makes rendering 10,000 hosts several times faster.
    plain_word = _PLAIN_WORD.fullmatch(value) and value.lower() not in _RESERVED
    if plain_word or _PLAIN_DURATION.fullmatch(value):
        return value
    return quote(value)


def scalar(value: Any) -> str:
    """Render a scalar so that it reads back with the same type and value."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return str(value)
    if kind is float:
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 (Go's yaml.v2, PyYAML) reads a float only with a dot: 5e-324 → 5.0e-324.
        if "e" in text and "." not in text:
            text = text.replace("e", ".0e", 1)
        return text
    if isinstance(value, str):
        return _string(str(value))
    if isinstance(value, int):
        return str(int(value))
    raise TypeError(f"cannot render {type(value).__name__} as a YAML scalar")


def _plain(value: Any) -> Any:
    """Mappings → dict, sequences → list, recursively (the emitter's fast path needs it)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _lines(value: Any, indent: int, out: list[str]) -> None:
    # Exact type checks: `isinstance(x, Mapping)` costs an ABC lookup per node, which
    # dominated rendering 10,000 hosts. `dump` normalises input to dict/list first.
    pad = " " * indent
    if type(value) is dict:
        for key, item in value.items():
            k = _string(str(key))
            kind = type(item)
            if kind is dict or kind is list:
                if item:
                    out.append(f"{pad}{k}:")
                    _lines(item, indent + 2, out)
                else:
                    out.append(f"{pad}{k}: {'{}' if kind is dict else '[]'}")
            else:
                out.append(f"{pad}{k}: {scalar(item)}")
    elif type(value) is list:
        for item in value:
            kind = type(item)
            if kind is dict or kind is list:
                if item:
                    start = len(out)
                    _lines(item, indent + 2, out)
                    # The first line of the nested block moves onto the dash line.
                    out[start] = f"{pad}- {out[start][indent + 2 :]}"
                else:
                    out.append(f"{pad}- {'{}' if kind is dict else '[]'}")
            else:
                out.append(f"{pad}- {scalar(item)}")
    else:
        out.append(f"{pad}{scalar(value)}")


def comment_safe(text: str) -> str:
    """``text`` with control characters and Unicode line breaks escaped as ``\\uXXXX``."""
    return "".join(
        f"\\u{ord(c):04x}" if (ord(c) < 0x20 and c != "\t") or ord(c) in _ESCAPE_EXTRA else c
        for c in text
    )


def dump(data: Any, *, header: str | None = None) -> str:
    """Deterministic block-style YAML for plain data; key order is the dict's order."""
    out: list[str] = []
    if header:
        # Comment text must not contain what YAML forbids or treats as a line break.
        out.extend(f"# {comment_safe(line)}".rstrip() for line in header.split("\n"))
    data = _plain(data)
    if type(data) in (dict, list) and not data:
        out.append("{}" if type(data) is dict else "[]")
    else:
        _lines(data, 0, out)
    return "\n".join(out) + "\n"
