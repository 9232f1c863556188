"""The schema checks' descent memo (flobs.resources) reports exactly what jsonschema does."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flobs import resources, yamlio
from flobs.checks import kinds as k
from flobs.checks.structure import describe


def _errors(name: str, doc: Any) -> list[tuple[Any, ...]]:
    return [
        (
            tuple(e.absolute_path),
            tuple(e.relative_schema_path),
            e.validator,
            e.message,
            describe(e),
        )
        for e in resources.validator(name).iter_errors(doc)
    ]


def _plain(name: str, doc: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    with monkeypatch.context() as m:
        m.setattr(resources._Validator, "descend", resources._plain_descend)
        return _errors(name, doc)


def _docs(example_out: Path) -> Iterator[tuple[str, str, Any]]:
    for path in sorted(p.relative_to(example_out).as_posix() for p in example_out.rglob("*")):
        kind = next((x for x in k.KINDS if k.matches(path, x.patterns)), None)
        if kind is None or kind.schema is None:
            continue
        text = (example_out / path).read_text()
        doc = yamlio.load_json(text) if path.endswith(".json") else yamlio.load(text)
        yield path, kind.schema, doc


def _nodes(doc: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        yield from _nodes(value, (*at, key))


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.sampled_from(["a", "job_name", "1"]), st.integers(0, 1), max_size=2),
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_memo_gives_the_same_errors_as_jsonschema(
    example_out: Path, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = list(_docs(example_out))
    _path, name, doc = data.draw(st.sampled_from(docs), label="file")
    edited = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        node_path = data.draw(st.sampled_from(list(_nodes(edited))), label="node")
        if not node_path:
            continue
        parent = edited
        for part in node_path[:-1]:
            parent = parent[part]
        parent[node_path[-1]] = data.draw(VALUES, label="value")
    # The original first, so the edited copy meets a warm memo, as the 10,000th host does.
    assert _errors(name, doc) == _plain(name, doc, monkeypatch)
    assert _errors(name, edited) == _plain(name, edited, monkeypatch)
