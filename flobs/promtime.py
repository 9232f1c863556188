"""Prometheus durations (``1h30m``, ``15s``, ``250ms``)."""

from __future__ import annotations

import re

_UNITS_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}
_DURATION = re.compile(
    r"^(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?"
    r"(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$"
)


def parse_duration(text: str) -> int | None:
    """Milliseconds, or None when ``text`` is not a Prometheus duration."""
    if text == "0":
        return 0
    m = _DURATION.fullmatch(text)
    if not m or not text:
        return None
    total = 0
    for value, unit in zip(m.groups(), ("y", "w", "d", "h", "m", "s", "ms"), strict=True):
        if value:
            total += int(value) * _UNITS_MS[unit]
    return total


def seconds(text: str) -> float:
    ms = parse_duration(text)
    if ms is None:
        raise ValueError(f"not a duration: {text!r}")
    return ms / 1000
