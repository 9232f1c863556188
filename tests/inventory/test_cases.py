"""Inventory error cases: ``tests/cases/<name>/inventory.yaml`` + ``expected.txt``.

Each case must fail to load with exactly the problems in ``expected.txt``
(``file:line:col: $.path: message`` and hint lines). Adding a case is adding files.
Regenerate expectations on purpose only: ``FLOBS_UPDATE_GOLDEN=1 pytest tests/inventory``,
then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flobs.errors import InputError
from flobs.inventory import load_fleet
from tests.conftest import REPO

CASES = sorted(p for p in (REPO / "tests" / "cases").iterdir() if (p / "inventory.yaml").exists())


def _render(case: Path) -> str:
    rel = (case / "inventory.yaml").relative_to(REPO).as_posix()
    with pytest.raises(InputError) as info:
        load_fleet(case / "inventory.yaml", display_name=rel)
    return "\n".join(p.render() for p in info.value.problems) + "\n"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_fails_with_expected_problems(case: Path) -> None:
    got = _render(case)
    expected_file = case / "expected.txt"
    if os.environ.get("FLOBS_UPDATE_GOLDEN"):
        expected_file.write_text(got, encoding="utf-8")
    assert got == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_problem_has_a_position_and_hint(case: Path) -> None:
    with pytest.raises(InputError) as info:
        load_fleet(case / "inventory.yaml")
    for problem in info.value.problems:
        assert problem.line is not None and problem.col is not None, problem
        if problem.check_id != "schema" or "unknown key" in problem.message:
            assert problem.hint, problem
