"""Schema validation follows JSON Schema's (ECMA-262) regex semantics."""

from __future__ import annotations

import pytest

from flobs.resources import _ecma_pattern


@pytest.mark.parametrize(
    ("pattern", "text", "hit"),
    [
        ("^[a-z]+$", "ab", True),
        ("^[a-z]+$", "ab\n", False),  # Python's `$` alone would accept this
        ("^a$|^b$", "b\n", False),
        ("[$]", "$", True),  # a `$` inside a class is a literal
        (r"^\$x$", "$x", True),  # an escaped `$` is a literal
        ("^[^$]+$", "a$", False),
    ],
)
def test_dollar_means_end_of_input(pattern: str, text: str, hit: bool) -> None:
    assert bool(_ecma_pattern(pattern).search(text)) is hit
