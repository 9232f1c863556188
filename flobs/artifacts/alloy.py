"""Grafana Alloy per host (``logs.agent: alloy``): the same log path as Promtail.

Promtail reached end-of-life on 2026-03-02 and Alloy replaces it. The behaviour is
the same as ``promtail.yml`` (field mapping, labels, structured metadata, Loki
client); only the syntax differs. Alloy takes its HTTP listen address and its data
directory (where it keeps read positions) as command-line flags, not in the file,
so the header comment says how to start it.

Alloy strings are double-quoted with Go-style escapes; :func:`alloy_string` is the
only way a value reaches the file, and ``{{``/``${…}`` mean nothing to Alloy.

:func:`parse` reads back the subset of the syntax written here (blocks, attributes,
strings, numbers, booleans, ``null``, lists, objects, references), so ``flobs
validate`` can check a ``config.alloy`` without Alloy installed. Function calls and
operators are not part of that subset and are reported as syntax errors.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2

from flobs import resources
from flobs.artifacts import promtail
from flobs.artifacts.common import header
from flobs.model import Host, HostScope

TEMPLATE = "config.alloy.j2"

_SIMPLE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def alloy_string(value: object) -> str:
    """``value`` as an Alloy string literal that reads back unchanged."""
    if not isinstance(value, str):
        raise TypeError(f"alloy_string takes str, got {type(value).__name__}")
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or code in (0x2028, 0x2029):
            # Control and line-separator characters never appear raw in the file.
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def alloy_bool(value: object) -> str:
    if not isinstance(value, bool):
        raise TypeError(f"alloy_bool takes bool, got {type(value).__name__}")
    return "true" if value else "false"


def _environment() -> jinja2.Environment:
    # Not HTML: autoescape off; every interpolation goes through a filter instead.
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - Alloy syntax, not HTML; escaped by alloy_string
    )
    env.filters["alloy_string"] = alloy_string
    env.filters["alloy_bool"] = alloy_bool
    return env


_ENV = _environment()


def run_command(host: Host) -> str:
    """The command line in the header, safe to paste into a shell: every value from
    the inventory is one shell word, whatever it contains (``;``, spaces, quotes).
    ``<this file>`` is the placeholder for the config's path."""
    logs = host.vars.logs
    return (
        shlex.join(
            [
                "alloy",
                "run",
                f"--server.http.listen-addr={logs.listen}",
                f"--storage.path={logs.positions_dir}",
            ]
        )
        + " <this file>"
    )


def context(scope: HostScope, host: Host) -> dict[str, Any]:
    logs = host.vars.logs
    loki = scope.central.logs
    auth = loki.auth
    comment = header(
        scope,
        f"Grafana Alloy for Flintlock host {host.name}. Alloy reads its listen address and\n"
        "data directory from flags, not from this file; run it as\n"
        f"  {run_command(host)}\n"
        "The data directory keeps the read positions: keep it on persistent storage.",
    )
    return {
        "header_lines": comment.splitlines(),
        "source": logs.source,
        "unit_match": f"_SYSTEMD_UNIT={logs.unit}",
        "journal_max_age": promtail.JOURNAL_MAX_AGE,
        "journal_unit_label": promtail.JOURNAL_UNIT_LABEL,
        "path": logs.path,
        "legacy_positions_file": f"{logs.positions_dir.rstrip('/')}/{promtail.POSITIONS_FILE}",
        "json_fields": promtail.JSON_FIELDS,
        "label_fields": promtail.LABEL_FIELDS,
        "metadata_fields": promtail.metadata_fields(scope),
        "time_field": promtail.TIME_FIELD,
        "time_format": promtail.TIME_FORMAT,
        "dropped_labels": promtail.DROPPED_LABELS,
        "loki_url": loki.url,
        "tenant": loki.tenant,
        "bearer_token_file": auth.bearer_token_file,
        "username": auth.username,
        "password_file": auth.password_file,
        "tls": {
            k: getattr(auth, k) for k in ("ca_file", "cert_file", "key_file") if getattr(auth, k)
        },
        "insecure_skip_verify": auth.insecure_skip_verify,
        "external_labels": promtail.stream_labels(scope, host),
    }


@cache
def _template() -> jinja2.Template:
    # Compiling costs ~10 ms; once per process, not once per host.
    return _ENV.from_string(resources.template_text(TEMPLATE))


def render(scope: HostScope, host: Host) -> str:
    return _template().render(context(scope, host))


def host_files(scope: HostScope, host: Host) -> dict[str, bytes]:
    if host.log_agent != "alloy":
        return {}
    return {f"hosts/{host.name}/config.alloy": render(scope, host).encode("utf-8")}


# --------------------------------------------------------------------------- reading


class AlloySyntaxError(ValueError):
    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(f"line {line}:{col}: {message}")
        self.message = message
        self.line = line
        self.col = col


@dataclass(frozen=True)
class Ref:
    """A reference to another component's export, e.g. ``loki.write.central.receiver``."""

    path: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.path)


@dataclass
class Block:
    name: str  # e.g. "loki.source.journal" or "stage.json"
    label: str | None
    line: int
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    @property
    def component_id(self) -> str:
        return f"{self.name}.{self.label}" if self.label is not None else self.name

    def children(self, name: str) -> list[Block]:
        return [b for b in self.blocks if b.name == name]


_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]=,.])
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}


def unquote(literal: str) -> str:
    """Decode one double-quoted Alloy string literal (Go escapes)."""
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        kind = body[i + 1]
        if kind in _ESCAPES:
            out.append(_ESCAPES[kind])
            i += 2
        elif kind in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise ValueError(f"bad \\{kind} escape in {literal}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif kind in "01234567":
            digits = body[i + 1 : i + 4]
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{kind} in {literal}")
    return "".join(out)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    line: int
    col: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise AlloySyntaxError(
                f"unexpected character {text[pos]!r}", line, pos - line_start + 1
            )
        kind = m.lastgroup or ""
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, m.group(), line, pos - line_start + 1))
        newlines = m.group().count("\n")
        if newlines:
            line += newlines
            line_start = m.start() + m.group().rindex("\n") + 1
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            last = self.toks[-1] if self.toks else _Tok("", "", 1, 1)
            raise AlloySyntaxError("unexpected end of file", last.line, last.col)
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        tok = self.next()
        if tok.text != text:
            raise AlloySyntaxError(f"expected {text!r}, found {tok.text!r}", tok.line, tok.col)
        return tok

    def body(self, closing: str | None) -> tuple[dict[str, Any], list[Block]]:
        attrs: dict[str, Any] = {}
        blocks: list[Block] = []
        while True:
            tok = self.peek()
            if tok is None:
                if closing is None:
                    return attrs, blocks
                raise AlloySyntaxError("unclosed block", self.toks[-1].line, self.toks[-1].col)
            if closing is not None and tok.text == closing:
                self.next()
                return attrs, blocks
            start = self.next()
            if start.kind != "ident":
                raise AlloySyntaxError(
                    f"expected a name, found {start.text!r}", start.line, start.col
                )
            parts = [start.text]
            while self.peek() is not None and self.peek().text == ".":  # type: ignore[union-attr]
                self.next()
                part = self.next()
                if part.kind != "ident":
                    raise AlloySyntaxError("expected a name after '.'", part.line, part.col)
                parts.append(part.text)
            after = self.next()
            if after.text == "=":
                if len(parts) != 1:
                    raise AlloySyntaxError("attribute names have no dots", start.line, start.col)
                if parts[0] in attrs:
                    raise AlloySyntaxError(
                        f"attribute {parts[0]!r} set twice", start.line, start.col
                    )
                attrs[parts[0]] = self.expr()
                continue
            label: str | None = None
            if after.kind == "string":
                label = unquote(after.text)
                after = self.next()
            if after.text != "{":
                raise AlloySyntaxError(
                    f"expected '=' or '{{', found {after.text!r}", after.line, after.col
                )
            battrs, bblocks = self.body("}")
            blocks.append(Block(".".join(parts), label, start.line, battrs, bblocks))

    def expr(self) -> Any:
        tok = self.next()
        if tok.kind == "string":
            return unquote(tok.text)
        if tok.kind == "number":
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                return tok.text == "true"
            if tok.text == "null":
                return None
            parts = [tok.text]
            while self.peek() is not None and self.peek().text == ".":  # type: ignore[union-attr]
                self.next()
                parts.append(self.next().text)
            return Ref(tuple(parts))
        if tok.text == "[":
            items: list[Any] = []
            while True:
                if self.peek() is not None and self.peek().text == "]":  # type: ignore[union-attr]
                    self.next()
                    return items
                items.append(self.expr())
                sep = self.next()
                if sep.text == "]":
                    return items
                if sep.text != ",":
                    raise AlloySyntaxError(
                        f"expected ',' or ']', found {sep.text!r}", sep.line, sep.col
                    )
        if tok.text == "{":
            obj: dict[str, Any] = {}
            while True:
                if self.peek() is not None and self.peek().text == "}":  # type: ignore[union-attr]
                    self.next()
                    return obj
                key_tok = self.next()
                if key_tok.kind == "string":
                    key = unquote(key_tok.text)
                elif key_tok.kind == "ident":
                    key = key_tok.text
                else:
                    raise AlloySyntaxError(
                        f"expected an object key, found {key_tok.text!r}", key_tok.line, key_tok.col
                    )
                self.expect("=")
                obj[key] = self.expr()
                sep = self.next()
                if sep.text == "}":
                    return obj
                if sep.text != ",":
                    raise AlloySyntaxError(
                        f"expected ',' or '}}', found {sep.text!r}", sep.line, sep.col
                    )
        raise AlloySyntaxError(f"unexpected {tok.text!r}", tok.line, tok.col)


def parse(text: str) -> list[Block]:
    """The top-level blocks of an Alloy file; raises :class:`AlloySyntaxError`."""
    parser = _Parser(text)
    try:
        attrs, blocks = parser.body(None)
    except ValueError as err:
        if isinstance(err, AlloySyntaxError):
            raise
        tok = parser.toks[max(parser.i - 1, 0)] if parser.toks else _Tok("", "", 1, 1)
        raise AlloySyntaxError(str(err), tok.line, tok.col) from err
    if attrs:
        raise AlloySyntaxError(f"top-level attribute {next(iter(attrs))!r}", 1, 1)
    return blocks
