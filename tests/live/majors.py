"""Prometheus binaries by major version, for tests that must pass on 2.x and 3.x.

Debian ships 2.42 on PATH; tools/ builds 3.x into .tools/bin.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache

from tests.conftest import REPO, require_tool

MAJORS = ("2", "3")


@cache
def _major(path: str) -> str | None:
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"version (\d+)\.", proc.stdout + proc.stderr)
    return m.group(1) if m else None


def tool_of_major(name: str, major: str) -> str:
    """``name`` (prometheus or promtool) of that major version, or skip/fail loudly."""
    for candidate in (str(REPO / ".tools" / "bin" / name), shutil.which(name)):
        if candidate and shutil.which(candidate) and _major(candidate) == major:
            return candidate
    return require_tool(f"{name}-{major}.x (none of the {name} binaries found is {major}.x)")
