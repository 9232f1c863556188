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
    """The text is not YAML, or it breaks a rule we enforce (duplicate key, a bound)."""

    def __init__(
        self, message: str, mark: Mark | None, path: Path_ = (), *, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.path = path
        self.hint = hint or "fix the YAML syntax at this position"

    def as_problem(self, file: str, check_id: str = "yaml") -> Problem:
        """The error as a located problem, the form every command reports."""
        return Problem(
            file,
            self.mark.line if self.mark else None,
            self.mark.col if self.mark else None,
            check_id,
            Severity.ERROR,
            f"invalid YAML: {self.message}",
            self.hint,
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


_MERGE_KEY = "<<"

# Bounds on what one document may make us build. A fleet inventory nests about
# eight levels and a dashboard about twelve; YAML's anchors let a few hundred bytes
# stand for billions of nodes ("billion laughs") and an anchor may even contain
# itself. These limits turn all of that into a located error, in milliseconds.
MAX_DEPTH = 100
# Nodes an anchored document may produce through aliases: a fixed allowance plus ten
# times the nodes actually written. `<<: *defaults` on every one of 10,000 hosts
# stays far below it; nine nested aliases of nine (10^9 nodes) hit it at once.
ALIAS_ALLOWANCE = 10_000
ALIAS_RATIO = 10

_CORE = "tag:yaml.org,2002:"
# Explicit tags whose meaning is plain data: honoured (`!!str 0755` stays a string).
_SCALAR_TAGS = frozenset(f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null"))
_SEQUENCE_TAGS = frozenset({"", "!", f"{_CORE}seq"})
_MAPPING_TAGS = frozenset({"", "!", f"{_CORE}map"})


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _scalar(node: Any) -> Any:
    """A scalar node's value: YAML 1.2 core resolution, or its explicit core tag."""
    tag = node.tag
    if not tag:
        return _resolve_plain(node.value) if node.style in (None, "") else node.value
    if tag == "!" or tag == f"{_CORE}str":
        return node.value
    if tag in _SCALAR_TAGS:
        value = _resolve_plain(node.value)
        kind = tag[len(_CORE) :]
        ok = {
            "int": type(value) is int,
            "float": type(value) in (int, float),
            "bool": type(value) is bool,
            "null": value is None,
        }[kind]
        if not ok:
            raise YamlSyntaxError(
                f"{node.value!r} is not a valid !!{kind}",
                _mark(node),
                hint=f"write a {kind} after !!{kind}, or drop the tag",
            )
        return float(value) if kind == "float" else value
    raise _unsupported_tag(node)


def _unsupported_tag(node: Any) -> YamlSyntaxError:
    name = _tag_name(node.tag)
    if node.tag == f"{_CORE}binary":
        hint = "flobs reads text only: write the value as a plain string, without !!binary"
    else:
        hint = "flobs reads plain YAML (no application tags): remove the tag"
    return YamlSyntaxError(f"explicit tag `{name}` is not supported", _mark(node), hint=hint)


def _mark(node: Any) -> Mark:
    m = node.start_mark
    return Mark(m.line + 1, m.column + 1)


def _too_deep(node: Any) -> YamlSyntaxError:
    return _too_deep_at(_mark(node))


def _too_deep_at(mark: Mark) -> YamlSyntaxError:
    return YamlSyntaxError(
        f"nested deeper than {MAX_DEPTH} levels",
        mark,
        hint="no flobs file nests this deep; flatten the structure",
    )


class _Converter:
    """Turns a composed node tree (PyYAML's or ruamel's) into plain data + positions.

    ``anchored`` documents (their text has an ``&``) may share nodes through aliases:
    those are tracked so that a self-containing anchor and an exponential expansion
    are errors instead of a RecursionError or an out-of-memory kill.
    """

    def __init__(self, *, anchored: bool) -> None:
        self.values: dict[Path_, Mark] = {}
        self.keys: dict[Path_, Mark] = {}
        self.anchored = anchored
        self._open: set[int] = set()  # containers being converted (an alias to one recurses)
        self._seen: set[int] = set()  # distinct nodes of the text
        self._expanded = 0  # nodes produced again through an alias
        self._alias_at: Path_ | None = None  # path of the outermost alias being expanded

    def convert(self, node: Any, path: Path_) -> Any:
        self.values[path] = _mark(node)
        kind = node.id  # "scalar" | "sequence" | "mapping" for both libraries
        if self.anchored and self._count(node, path):
            # The outermost alias being expanded: the place in the text to blame.
            self._alias_at = path
            try:
                return self._convert(node, kind, path)
            finally:
                self._alias_at = None
        return self._convert(node, kind, path)

    def _convert(self, node: Any, kind: str, path: Path_) -> Any:
        if kind == "scalar":
            return _scalar(node)
        if len(path) >= MAX_DEPTH:
            raise _too_deep(node)
        if not self.anchored:
            return self._container(node, kind, path)
        if id(node) in self._open:
            raise YamlSyntaxError(
                "an alias refers to the anchor that contains it (a recursive structure)",
                _mark(node),
                path,
                hint="flobs reads finite data only: copy the values instead of the alias",
            )
        self._open.add(id(node))
        try:
            return self._container(node, kind, path)
        finally:
            self._open.discard(id(node))

    def _count(self, node: Any, path: Path_) -> bool:
        """Count ``node``; True when it starts an alias expansion outside any other."""
        if id(node) not in self._seen:
            self._seen.add(id(node))
            return False
        self._expanded += 1
        if self._expanded > ALIAS_ALLOWANCE + ALIAS_RATIO * len(self._seen):
            at = self._alias_at or path
            raise YamlSyntaxError(
                f"aliases expand the document by more than {ALIAS_ALLOWANCE:,} nodes "
                "(an alias bomb?)",
                self.values.get(at[:-1]) if at else _mark(node),
                at,
                hint="write the values out, or alias fewer, smaller anchors",
            )
        return self._alias_at is None

    def _container(self, node: Any, kind: str, path: Path_) -> Any:
        if kind == "sequence":
            if node.tag not in _SEQUENCE_TAGS:
                raise _unsupported_tag(node)
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        if kind == "mapping":
            if node.tag not in _MAPPING_TAGS:
                raise _unsupported_tag(node)
            return self._mapping(node, path)
        raise YamlSyntaxError(f"unsupported YAML node {kind!r}", _mark(node), path)

    def _mapping(self, node: Any, path: Path_) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        sources: list[Any] = []
        for key_node, value_node in node.value:
            if key_node.id != "scalar":
                raise YamlSyntaxError("mapping keys must be plain strings", _mark(key_node), path)
            if key_node.value == _MERGE_KEY and key_node.style in (None, "") and not key_node.tag:
                # YAML merge key (`<<: *defaults`): explicit keys win over merged ones,
                # and an earlier source over a later one (the merge-key spec).
                if value_node.id == "sequence":
                    sources.extend(value_node.value)
                else:
                    sources.append(value_node)
                continue
            key = _scalar(key_node)
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
        for source in sources:
            self._merge(result, source, path)
        return result

    def _merge(self, result: dict[Any, Any], source: Any, path: Path_) -> None:
        # Converted aside, then only the keys this source contributes are taken, with
        # their positions (at the anchor, where their text is); the mapping keeps its own.
        aside = _Converter(anchored=self.anchored)
        aside._open, aside._seen = self._open, self._seen
        aside._expanded, aside._alias_at = self._expanded, self._alias_at
        aside.values[path[:-1]] = self.values.get(path[:-1], _mark(source))
        data = aside.convert(source, path)
        self._expanded = aside._expanded
        if not isinstance(data, dict):
            raise YamlSyntaxError("`<<` must merge a mapping", _mark(source), path)
        depth = len(path)
        taken = {k for k in data if k not in result}
        for k in taken:
            result[k] = data[k]
        for table, mine in ((aside.values, self.values), (aside.keys, self.keys)):
            for p, mark in table.items():
                if len(p) > depth and p[depth] in taken:
                    mine[p] = mark


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
                if "maximum nesting depth" in str(err.problem):
                    # libyaml stops at 1,000 levels; name the first one past ours instead,
                    # found in the text before that point.
                    mark = err.problem_mark or err.context_mark
                    raise _too_deep_in(text[: mark.index] if mark else text) from err
                mark = err.problem_mark or err.context_mark
                raise _marked(text, err.context, err.problem, mark) from err
    except ImportError:  # pragma: no cover - PyYAML is a dependency; kept for robustness
        pass
    return _compose_ruamel(text)


def _marked(text: str, context: str | None, problem: str | None, mark: Any) -> YamlSyntaxError:
    """A parser's error as ours; a tab where YAML wants indentation is named as such."""
    at = Mark(mark.line + 1, mark.column + 1) if mark else None
    if at is not None:
        lines = text.split("\n")
        line = lines[at.line - 1] if at.line <= len(lines) else ""
        if line[at.col - 1 : at.col] == "\t" or ("tab" in str(problem) and "\t" in line[: at.col]):
            return YamlSyntaxError(
                "a tab character: YAML indents with spaces only",
                Mark(at.line, line.index("\t") + 1) if "\t" in line else at,
                hint="replace the tab with spaces",
            )
    return YamlSyntaxError(" ".join(x for x in (context, problem) if x) or "invalid YAML", at)


def _unacceptable(character: int | str) -> str:
    code = character if isinstance(character, int) else ord(character)
    return f"character U+{code:04X} is not allowed in YAML; remove it or write it as \\u{code:04x}"


def _mark_at(text: str, position: int) -> Mark:
    before = text[:position]
    return Mark(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)


@lru_cache(maxsize=1)
def _ruamel_yaml() -> Any:
    """ruamel's pure-Python composer with a resolver that leaves implicit tags empty, as
    the libyaml path does: an explicit tag is then the only tag a node carries."""
    from ruamel.yaml import YAML
    from ruamel.yaml.resolver import VersionedResolver
    from ruamel.yaml.tag import Tag

    class ComposeOnlyResolver(VersionedResolver):
        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            return Tag(suffix="")

    yaml = YAML(typ="safe", pure=True)
    yaml.Resolver = ComposeOnlyResolver
    return yaml


def _compose_ruamel(text: str) -> Any:
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.reader import ReaderError

    try:
        return _ruamel_yaml().compose(text)
    except ReaderError as err:
        raise YamlSyntaxError(_unacceptable(err.character), _mark_at(text, err.position)) from err
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise _marked(text, err.context, err.problem, mark) from err
    except RecursionError as err:
        # The pure-Python composer recurses per level; find the level that is too deep.
        raise _too_deep_in(text) from err


def _too_deep_in(text: str) -> YamlSyntaxError:
    """The error for the first node nested deeper than MAX_DEPTH, found without recursion."""
    import yaml

    # Parsers are state machines: no recursion. libyaml's is fast but stops at 1,000
    # levels, so the text before that point is scanned again; the pure-Python one has
    # no limit of its own. What comes after the level we look for does not matter.
    for loader in (_compose_loader(), yaml.SafeLoader):
        if loader is None:
            continue
        depth = 0
        try:
            for event in yaml.parse(text, Loader=loader):
                if isinstance(event, yaml.CollectionStartEvent):
                    depth += 1
                    if depth > MAX_DEPTH:
                        mark = event.start_mark
                        return _too_deep_at(
                            Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
                        )
                elif isinstance(event, yaml.CollectionEndEvent):
                    depth -= 1
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            text = text[: mark.index] if mark else text
    return YamlSyntaxError(f"nested deeper than {MAX_DEPTH} levels", None)


def load_with_positions(text: str, *, backend: str = "auto") -> tuple[Any, Positions]:
    """Parse one YAML document; return ``(data, positions)``.

    ``backend`` is ``auto`` (libyaml when present), ``libyaml`` or ``ruamel``; the
    explicit ones exist so tests can prove both back ends agree.
    """
    node = _compose_ruamel(text) if backend == "ruamel" else _compose(text)
    if node is None:
        return None, Positions({(): Mark(1, 1)}, {})
    # Only a text with an `&` has anchors, hence aliases: the others skip the tracking.
    conv = _Converter(anchored="&" in text)
    data = conv.convert(node, ())
    return data, Positions(conv.values, conv.keys)


def load(text: str) -> Any:
    """Parse YAML into plain data (YAML 1.2 core semantics), without positions.

    Same semantics, bounds and errors as ``load_with_positions``, about twice as
    fast: no path tuples and no position maps are built.
    """
    node = _compose(text)
    if node is None:
        return None
    if "&" not in text:
        try:
            return _fast(node, 0)
        except _Rare:
            pass
    # Rare shapes (aliases, merge keys, duplicates, tags, deep nesting): the full
    # converter implements them once, with positions for its errors.
    return _Converter(anchored="&" in text).convert(node, ())


class _Rare(Exception):
    """A shape the fast path leaves to the full converter."""


def _fast(node: Any, depth: int) -> Any:
    kind = node.id
    if kind == "scalar":
        if node.tag:
            raise _Rare
        return _resolve_plain(node.value) if node.style in (None, "") else node.value
    if depth >= MAX_DEPTH or node.tag:
        raise _Rare
    if kind == "sequence":
        return [_fast(item, depth + 1) for item in node.value]
    if kind != "mapping":
        raise _Rare
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if (
            key_node.id != "scalar"
            or key_node.tag
            or (key_node.value == _MERGE_KEY and key_node.style in (None, ""))
        ):
            raise _Rare
        key = key_node.value if key_node.style not in (None, "") else _resolve_plain(key_node.value)
        if not isinstance(key, str):
            key = key_node.value
        if key in result:
            raise _Rare  # the full converter reports the duplicate with its position
        result[key] = _fast(value_node, depth + 1)
    return result


def load_json(text: str) -> Any:
    """JSON with the YAML reader's bounds: nesting deeper than ``MAX_DEPTH`` and syntax
    errors are ``YamlSyntaxError`` with a position, never a RecursionError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise YamlSyntaxError(err.msg, Mark(err.lineno, err.colno)) from err
    except RecursionError as err:
        raise _json_too_deep(text) from err
    stack: list[tuple[Any, int]] = [(data, 1)] if type(data) in (dict, list) else []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _json_too_deep(text)
        children = node.values() if type(node) is dict else node
        stack.extend((c, depth + 1) for c in children if type(c) in (dict, list))
    return data


def _json_too_deep(text: str) -> YamlSyntaxError:
    """The error for the first ``[`` or ``{`` nested deeper than MAX_DEPTH in JSON text."""
    depth = 0
    in_string = escaped = False
    for i, c in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _too_deep_at(_mark_at(text, i))
        elif c in "]}":
            depth -= 1
    return _too_deep_at(Mark(1, 1))


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


_SCALARS = frozenset([str, int, float, bool, type(None)])


def _plain(value: Any) -> Any:
    """Mappings → dict, sequences → list, recursively (the emitter's fast path needs it)."""
    kind = type(value)
    # Exact types first: an ABC isinstance per node was a third of rendering a host.
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
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


# What comment_safe escapes: C0 controls but tab, and what _ESCAPE_EXTRA names.
_COMMENT_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f" + "".join(re.escape(chr(c)) for c in sorted(_ESCAPE_EXTRA)) + "]"
)


def comment_safe(text: str) -> str:
    """``text`` with control characters and Unicode line breaks escaped as ``\\uXXXX``."""
    # A regex scan instead of a per-character generator: every header line of every
    # file passes here, and almost none needs escaping (it was 13 % of a cold run).
    return _COMMENT_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def dump(data: Any, *, header: str | None = None) -> str:
    """Deterministic block-style YAML for plain data; key order is the dict's order."""
    return _dump(_plain(data), header)


def dump_json_data(data: Any) -> str:
    """:func:`dump` for what ``json.loads`` returned: already only dicts, lists and
    scalars, so the walk that normalises other mappings and sequences is skipped."""
    return _dump(data, None)


def _dump(data: Any, header: str | None) -> str:
    out: list[str] = []
    if header:
        # Comment text must not contain what YAML forbids or treats as a line break.
        out.extend(f"# {comment_safe(line)}".rstrip() for line in header.split("\n"))
    if type(data) in (dict, list) and not data:
        out.append("{}" if type(data) is dict else "[]")
    else:
        _lines(data, 0, out)
    return "\n".join(out) + "\n"
