"""Inventory → fleet model: load YAML with positions, check it, merge, build.

``load_fleet`` is the one entry point. It reports *all* problems it finds, each
as ``file:line:col: $.key.path: message`` with a hint, by raising ``InputError``;
warnings (things that work but probably are not what the user wants) come back
with the fleet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from flobs.errors import InputError
from flobs.inventory.build import build_fleet
from flobs.inventory.schema_check import schema_problems
from flobs.inventory.source import Source
from flobs.inventory.urls import userinfo_problems
from flobs.model import Fleet
from flobs.problems import Problem, Severity
from flobs.yamlio import YamlSyntaxError, load_with_positions

__all__ = ["MAX_INVENTORY_BYTES", "LoadResult", "load_fleet", "load_fleet_text"]

# 10,000 hosts take 1.2 MB of YAML: 16 MiB holds some 140,000, far beyond any fleet.
MAX_INVENTORY_BYTES = 16 * 2**20


@dataclass(frozen=True)
class LoadResult:
    fleet: Fleet
    warnings: tuple[Problem, ...]


def _whole_file(shown: str, message: str, hint: str | None = None) -> InputError:
    """An error about the inventory file as a whole (no line to point at)."""
    return InputError([Problem(shown, None, None, "inventory", Severity.ERROR, message, hint)])


def load_fleet(path: Path, *, display_name: str | None = None) -> LoadResult:
    """Load and check the inventory at ``path``; raise ``InputError`` listing every problem."""
    shown = display_name or str(path)
    try:
        with path.open("rb") as stream:
            # Bounded: `-i /dev/zero` or a runaway generator must stop, not fill memory.
            raw = stream.read(MAX_INVENTORY_BYTES + 1)
    except FileNotFoundError as err:
        raise _whole_file(
            shown, "file not found", "pass the inventory with -i PATH (see examples/inventory.yaml)"
        ) from err
    except OSError as err:
        raise _whole_file(shown, f"cannot read: {err.strerror}") from err
    if len(raw) > MAX_INVENTORY_BYTES:
        raise _whole_file(
            shown,
            f"larger than {MAX_INVENTORY_BYTES // 2**20} MiB, the limit for an inventory",
            "a 10,000-host inventory is about 1.2 MB: check that -i names the inventory",
        )
    return load_fleet_text(raw, shown, file_name=path.name, base_dir=path.parent)


def load_fleet_text(
    raw: bytes, shown: str, *, file_name: str = "inventory.yaml", base_dir: Path | None = None
) -> LoadResult:
    """``base_dir`` is the inventory's directory: files it names (extensions, bcrypt
    hashes) are relative to it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _whole_file(
            shown, f"not UTF-8 text (byte {err.start})", "save the inventory as UTF-8"
        ) from err
    try:
        doc, positions = load_with_positions(text)
    except YamlSyntaxError as err:
        raise InputError([err.as_problem(shown)]) from err
    source = Source(shown, positions)
    if not isinstance(doc, dict):
        raise InputError(
            [
                source.problem(
                    (),
                    "the inventory must be a mapping",
                    "start from examples/inventory.yaml",
                    check_id="schema",
                )
            ]
        )

    problems = [
        source.problem(path, message, hint, check_id="schema", at_key=at_key)
        for path, message, hint, at_key in schema_problems(doc)
    ]
    problems += [
        source.problem(path, message, hint, check_id="schema")
        for path, message, hint in userinfo_problems(doc)
    ]
    if problems:
        # Semantic checks assume the shapes the schema guarantees; stop here.
        raise InputError(_dedupe(problems))

    fleet, found = build_fleet(
        doc,
        source,
        file_name=file_name,
        digest=hashlib.sha256(raw).hexdigest(),
        base_dir=base_dir,
    )
    errors = [p for p in found if p.severity is Severity.ERROR]
    if errors:
        raise InputError(_dedupe(errors))
    return LoadResult(fleet, tuple(_dedupe([p for p in found if p.severity is not Severity.ERROR])))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[object, ...]] = set()
    out = []
    for p in sorted(problems, key=lambda p: (p.line or 0, p.col or 0, p.key_path or "", p.message)):
        key = (p.line, p.col, p.key_path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
