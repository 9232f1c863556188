"""Helpers for tests: run the real CLI entry point and capture everything."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_flobs(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input_text: str | None = None,
) -> CliResult:
    """Run ``python -m flobs ARGS`` as a user would; no terminal, so no progress bar."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "flobs", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
