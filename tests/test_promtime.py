"""Prometheus durations."""

from __future__ import annotations

import pytest

from flobs.promtime import parse_duration


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("15s", 15000),
        ("1m30s", 90000),
        ("0", 0),
        ("2h", 7_200_000),
        ("250ms", 250),
        ("1y", 31_536_000_000),
    ],
)
def test_valid(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "15", "15s\n", "1.5s", "s", "1m1h", " 15s"])
def test_invalid(text: str) -> None:
    assert parse_duration(text) is None
