"""pull-dashboards' file writing: atomic, and nothing left behind when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from flobs.commands.pull import write_file
from flobs.errors import SystemFailure


def test_write_file_replaces_the_target_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dashboard.json"
    write_file(target, b"{}\n")
    write_file(target, b'{"v": 2}\n')
    assert target.read_bytes() == b'{"v": 2}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["dashboard.json"]


def test_a_failed_write_is_exit_3_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "dashboard.json"
    target.mkdir()  # the rename onto it fails after the temporary file was written
    with pytest.raises(SystemFailure) as caught:
        write_file(target, b"{}\n")
    assert caught.value.message == f"cannot write {target}: Is a directory"
    assert int(caught.value.exit_code) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["dashboard.json"]
