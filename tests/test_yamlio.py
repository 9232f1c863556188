"""The YAML layer: 1.2 semantics, positions, and an emitter that round-trips anything."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml as pyyaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from flobs import yamlio

BACKENDS = ["libyaml", "ruamel"]

# Values that have broken config generators: quotes, newlines, template and env
# syntax, comments, YAML indicators, booleans-in-disguise, unicode line separators.
HOSTILE = [
    'quote"inside',
    "single'quote",
    "new\nline",
    "{{ .Values }}",
    "${HOME}",
    "$$",
    "# not a comment",
    "a: b",
    "- item",
    "on",
    "yes",
    "NO",
    "~",
    "null",
    "0755",
    "1e3",
    "0x1F",
    ".inf",
    "",
    " leading space",
    "trailing space ",
    "tab\tchar",
    "ünïcødé ☃ 🚀",
    "\u2028line sep",
    "\x85nel",
    "back\\slash",
    "[flow]",
    "{flow: map}",
    "&anchor",
    "*alias",
    "!tag",
    "%directive",
    "@at",
    "`tick`",
    "|",
    ">",
    "?",
    "10.0.0.1",
    "127.0.0.1:9100",
    "15s",
    "\x7f",
    "\ufeffbom",
]

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | text
    | st.sampled_from(HOSTILE)
    | st.floats(allow_nan=False)
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(text | st.sampled_from(HOSTILE), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("backend", BACKENDS)
@given(doc=documents)
@settings(max_examples=150, deadline=None)
def test_dump_round_trips_in_our_loader(backend: str, doc: Any) -> None:
    assert yamlio.load_with_positions(yamlio.dump(doc), backend=backend)[0] == doc


@given(doc=documents)
@settings(max_examples=150, deadline=None)
def test_dump_round_trips_in_other_parsers(doc: Any) -> None:
    # PyYAML is a YAML 1.1 parser (like Go's yaml.v2 in Prometheus): "on"/"yes" must
    # still come back as strings, which only holds if the emitter quoted them.
    text_out = yamlio.dump(doc)
    assert pyyaml.safe_load(text_out) == doc
    assert YAML(typ="safe", pure=True).load(text_out) == doc


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_as_keys_and_values(value: str) -> None:
    doc = {value: [value, {"k": value}]}
    assert yamlio.load(yamlio.dump(doc, header="header line\nsecond")) == doc


@pytest.mark.parametrize("backend", BACKENDS)
def test_yaml_12_core_semantics(backend: str) -> None:
    data, _ = yamlio.load_with_positions(
        "a: on\nb: yes\nc: 0755\nd: 0o17\ne: 0x1f\nf: .inf\ng: ~\nh: 1.5\ni: '12'\nj: true\n",
        backend=backend,
    )
    assert data == {
        "a": "on",
        "b": "yes",
        "c": 755,
        "d": 15,
        "e": 31,
        "f": math.inf,
        "g": None,
        "h": 1.5,
        "i": "12",
        "j": True,
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_positions_of_values_and_keys(backend: str) -> None:
    text_in = "top:\n  list:\n    - name: x\n      port: 9100\n  flow: {listen: 0.0.0.0:9191}\n"
    data, pos = yamlio.load_with_positions(text_in, backend=backend)
    assert data["top"]["flow"]["listen"] == "0.0.0.0:9191"
    assert pos.of(("top", "list", 0, "port")) == yamlio.Mark(4, 13)
    assert pos.key_of(("top", "list", 0, "port")) == yamlio.Mark(4, 7)
    assert pos.of(("top", "flow", "listen")) == yamlio.Mark(5, 18)
    # A path below a scalar falls back to the nearest known parent.
    assert pos.of(("top", "list", 0, "port", "nope")) == yamlio.Mark(4, 13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_keys_are_errors_with_position(backend: str) -> None:
    with pytest.raises(yamlio.YamlSyntaxError) as info:
        yamlio.load_with_positions("a:\n  b: 1\n  b: 2\n", backend=backend)
    assert info.value.mark == yamlio.Mark(3, 3)
    assert "duplicate key 'b'" in info.value.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_merge_keys_explicit_keys_win(backend: str) -> None:
    data, _ = yamlio.load_with_positions(
        "base: &b {x: 1, y: 2}\nhost:\n  <<: *b\n  y: 3\n", backend=backend
    )
    assert data["host"] == {"x": 1, "y": 3}


def test_syntax_error_has_position() -> None:
    with pytest.raises(yamlio.YamlSyntaxError) as info:
        yamlio.load("a: [1, 2\nb: 3\n")
    assert info.value.mark is not None and info.value.mark.line >= 1


def test_format_path_quotes_odd_keys() -> None:
    assert yamlio.format_path(("hosts", 2, "vars", "x")) == "$.hosts[2].vars.x"
    assert yamlio.format_path(("labels", "a.b")) == '$.labels["a.b"]'


@pytest.mark.parametrize("backend", BACKENDS)
def test_control_characters_are_located_errors(backend: str) -> None:
    with pytest.raises(yamlio.YamlSyntaxError) as info:
        yamlio.load_with_positions("a: 1\nb: \x1f\n", backend=backend)
    assert info.value.mark == yamlio.Mark(2, 4)
    assert "U+001F" in info.value.message


def test_header_cannot_inject_lines() -> None:
    text = yamlio.dump({"a": 1}, header="cluster x\u2028evil: 1\x1b")
    assert yamlio.load(text) == {"a": 1}
    assert text.splitlines()[0] == "# cluster x\\u2028evil: 1\\u001b"


@pytest.mark.parametrize("value", [5e-324, 1e20, -2.5e-10, 1e16, 0.1, -0.0])
def test_floats_read_back_as_floats_in_yaml_11(value: float) -> None:
    text = yamlio.dump({"v": value})
    assert pyyaml.safe_load(text) == {"v": value}
    assert yamlio.load(text) == {"v": value}


@pytest.mark.parametrize("value", ["A\n", "15s\n", "on\n", "x\n\n"])
def test_trailing_newlines_survive(value: str) -> None:
    # Python's `$` matches before a final newline; the emitter must not be fooled.
    assert yamlio.load(yamlio.dump({"v": value})) == {"v": value}


@given(doc=documents)
@settings(max_examples=150, deadline=None)
def test_fast_load_equals_positional_load(doc: Any) -> None:
    text_out = yamlio.dump(doc)
    assert yamlio.load(text_out) == yamlio.load_with_positions(text_out)[0]


def test_fast_load_still_reports_duplicates_with_position() -> None:
    with pytest.raises(yamlio.YamlSyntaxError) as info:
        yamlio.load("a: 1\nb: 2\na: 3\n")
    assert info.value.mark == yamlio.Mark(3, 1)


@pytest.mark.skipif(not pyyaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_libyaml_fast_path_is_active() -> None:
    # A broken import silently falls back to ruamel, 20x slower at 10,000 hosts.
    assert yamlio._compose_loader() is not None
