"""Hostile YAML and JSON: alias bombs, recursive anchors, deep nesting, explicit tags.

Each is a located ``YamlSyntaxError`` (never MemoryError or RecursionError), the same
from both back ends and from ``load`` and ``load_with_positions``, within a second.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from flobs import yamlio
from flobs.yamlio import MAX_DEPTH, Mark, YamlSyntaxError

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=False)
)


def _all_readers(text: str, *, ruamel: bool = True) -> list[Any]:
    """The outcome of every reader: data, or (message, line, col, path) of the error.

    ruamel (the fallback when libyaml is missing) composes deep nesting slowly before
    its RecursionError: the 5,000-level cases leave it out (it is None in the list).
    """
    outcomes: list[Any] = []
    readers = [
        lambda t: yamlio.load_with_positions(t, backend="libyaml")[0],
        (lambda t: yamlio.load_with_positions(t, backend="ruamel")[0]) if ruamel else None,
        yamlio.load,
    ]
    for read in readers:
        if read is None:
            outcomes.append(outcomes[0])
            continue
        # CPU time, not wall time: the bound is on our work, not on the machine's load.
        start = time.process_time()
        try:
            outcomes.append(read(text))
        except YamlSyntaxError as err:
            mark = err.mark or Mark(0, 0)
            outcomes.append((err.message, mark.line, mark.col, yamlio.format_path(err.path)))
        assert time.process_time() - start < 1.0, "every hostile document is refused in a second"
    return outcomes


def _one_error(text: str, *, ruamel: bool = True) -> tuple[str, int, int, str]:
    outcomes = _all_readers(text, ruamel=ruamel)
    assert outcomes[0] == outcomes[1] == outcomes[2], outcomes
    assert isinstance(outcomes[0], tuple), outcomes[0]
    return outcomes[0]  # type: ignore[no-any-return]


def test_billion_laughs_is_a_located_error_within_a_second() -> None:
    assert len(LAUGHS) < 400  # a few hundred bytes standing for 9^9 nodes
    message, line, col, path = _one_error(LAUGHS)  # each reader within a second
    assert message == ("aliases expand the document by more than 10,000 nodes (an alias bomb?)")
    # The outermost alias being expanded when the budget ran out: `e: &e [*d, ...]`.
    assert (line, col, path) == (5, 4, "$.e[0]")


def test_many_small_aliases_are_fine() -> None:
    # `<<: *defaults` on 2,000 hosts: the ordinary use of anchors, far below the bound.
    text = "d: &d {a: 1, b: 2, c: [1, 2, 3]}\nhosts:\n" + "".join(
        f"  - {{<<: *d, name: h{i}}}\n" for i in range(2000)
    )
    data = yamlio.load(text)
    assert data["hosts"][1999] == {"name": "h1999", "a": 1, "b": 2, "c": [1, 2, 3]}


@pytest.mark.parametrize(
    ("text", "line", "col", "path"),
    [
        ("a: &a [*a]\n", 1, 4, "$.a[0]"),
        ("a: &a {b: *a}\n", 1, 4, "$.a.b"),
        ("a: &a\n  b: 1\n  <<: *a\n", 1, 4, "$.a"),
        ("x: 1\nl: &l [1, [2, *l]]\n", 2, 4, "$.l[1][1]"),
    ],
)
def test_recursive_alias_is_a_located_error(text: str, line: int, col: int, path: str) -> None:
    message, *where = _one_error(text)
    assert message == "an alias refers to the anchor that contains it (a recursive structure)"
    assert where == [line, col, path]


def _block(depth: int) -> str:
    return "".join(" " * i + "k:\n" for i in range(depth)) + " " * depth + "k: 1\n"


@pytest.mark.parametrize(
    ("text", "line", "col", "ruamel"),
    [
        ("a: " + "[" * 150 + "]" * 150 + "\n", 1, 103, True),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", 1, 103, False),  # past libyaml's own 1,000
        ("a: " + "{b: " * 150 + "1" + "}" * 150 + "\n", 1, 4 + 4 * 99, True),
        (_block(150), 101, 101, True),
        (_block(1500), 101, 101, True),
    ],
)
def test_deep_nesting_is_a_located_error(text: str, line: int, col: int, ruamel: bool) -> None:
    message, got_line, got_col, _ = _one_error(text, ruamel=ruamel)
    assert (message, got_line, got_col) == (f"nested deeper than {MAX_DEPTH} levels", line, col)


def test_nesting_up_to_the_bound_reads() -> None:
    text = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\n"
    outcomes = _all_readers(text)
    assert outcomes[0] == outcomes[1] == outcomes[2]
    node = outcomes[0]
    for _ in range(MAX_DEPTH - 1):
        node = node[0]
    assert node == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!str 0755\n", {"a": "0755"}),
        ("a: !!str true\n", {"a": "true"}),
        ("a: !!int '12'\n", {"a": 12}),
        ("a: !!float 1\n", {"a": 1.0}),
        ("a: !!bool 'false'\n", {"a": False}),
        ("a: !!null ''\n", {"a": None}),
        ("a: !!seq [1]\nb: !!map {c: 2}\n", {"a": [1], "b": {"c": 2}}),
        ("!!str 1: x\n", {"1": "x"}),
    ],
)
def test_core_tags_are_honoured(text: str, expected: Any) -> None:
    assert _all_readers(text) == [expected] * 3


@pytest.mark.parametrize(
    ("text", "message", "line", "col"),
    [
        ("a: !!binary aGVsbG8=\n", "explicit tag `!!binary` is not supported", 1, 4),
        ("a:\n  b: !foo 1\n", "explicit tag `!foo` is not supported", 2, 6),
        ("a: !!set {x: null}\n", "explicit tag `!!set` is not supported", 1, 4),
        ("a: !!omap [x: 1]\n", "explicit tag `!!omap` is not supported", 1, 4),
        (
            "a: !!python/object:os.system {}\n",
            "explicit tag `!!python/object:os.system` is not supported",
            1,
            4,
        ),
        ("a: !!int twelve\n", "'twelve' is not a valid !!int", 1, 4),
        ("a: !!bool yes\n", "'yes' is not a valid !!bool", 1, 4),
    ],
)
def test_other_tags_are_refused_where_they_are(
    text: str, message: str, line: int, col: int
) -> None:
    got, got_line, got_col, _ = _one_error(text)
    assert (got, got_line, got_col) == (message, line, col)


def test_merge_keeps_the_mappings_own_position() -> None:
    text = "base: &b {x: 1, y: 2}\nm:\n  y: 3\n  <<: *b\n  z: 4\n"
    data, positions = yamlio.load_with_positions(text)
    assert data["m"] == {"y": 3, "z": 4, "x": 1}
    assert positions.of(("m",)) == Mark(3, 3)  # not the anchor's line
    assert positions.of(("m", "y")) == Mark(3, 6)  # the explicit key wins, with its place
    assert positions.of(("m", "x")) == Mark(1, 14)  # merged: where its text is
    assert positions.key_of(("m", "z")) == Mark(5, 3)


def test_merge_sources_in_order_earlier_wins() -> None:
    text = "a: &a {k: 1}\nb: &b {k: 2, j: 3}\nm: {<<: [*a, *b]}\n"
    assert _all_readers(text) == [{"a": {"k": 1}, "b": {"k": 2, "j": 3}, "m": {"k": 1, "j": 3}}] * 3


@pytest.mark.parametrize(
    ("text", "message", "line", "col"),
    [
        ("[" * 5000 + "]" * 5000, f"nested deeper than {MAX_DEPTH} levels", 1, 101),
        (
            '{"a": [' + '{"b": [' * 60 + "]}" * 60 + "]}",
            f"nested deeper than {MAX_DEPTH} levels",
            1,
            2 + 6 + 7 * 49,
        ),
        ('{"a": 1,\n "b": }', "Expecting value", 2, 7),
    ],
)
def test_json_is_bounded_and_located(text: str, message: str, line: int, col: int) -> None:
    with pytest.raises(YamlSyntaxError) as info:
        yamlio.load_json(text)
    assert (info.value.message, info.value.mark) == (message, Mark(line, col))
