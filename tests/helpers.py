"""Helpers for tests: run the real CLI entry point and capture everything."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


def prometheus3_external_label(value: str, env: dict[str, str] | None = None) -> str:
    """What Prometheus 3 makes of an external label value written in its config.

    A reader written from Go's ``os.Expand`` (which Prometheus 3 runs over external
    labels, mapping ``$$`` to ``$`` and names to environment variables), not from
    flobs' escaping: the round trip is only proven if the two agree.
    """
    env = env or {}

    def special(c: str) -> bool:
        return c in "*#$@!?-" or c.isdigit()

    def alnum(c: str) -> bool:
        return c == "_" or (c.isascii() and c.isalnum())

    def shell_name(s: str) -> tuple[str, int]:
        if s[0] == "{":
            if len(s) > 2 and special(s[1]) and s[2] == "}":
                return s[1], 3
            for i in range(1, len(s)):
                if s[i] == "}":
                    return ("", 2) if i == 1 else (s[1:i], i + 1)
            return "", 1
        if special(s[0]):
            return s[0], 1
        i = 0
        while i < len(s) and alnum(s[i]):
            i += 1
        return s[:i], i

    out: list[str] = []
    i = j = 0
    while j < len(value):
        if value[j] == "$" and j + 1 < len(value):
            out.append(value[i:j])
            name, width = shell_name(value[j + 1 :])
            if name == "" and width > 0:
                pass  # invalid syntax: Go eats it
            elif name == "":
                out.append("$")
            else:
                out.append("$" if name == "$" else env.get(name, ""))
            j += width
            i = j + 1
        j += 1
    return "".join(out) + value[i:] if out or i else value


# The smallest valid inventory: one host, every central endpoint on https.
# Tests deep-copy it and add the settings they are about.
MINIMAL_INVENTORY: dict[str, Any] = {
    "apiVersion": "flobs/v1",
    "cluster": "c",
    "hosts": [{"name": "h1", "address": "10.0.0.1"}],
    "central": {
        "prometheus": {"url": "https://prom.c:9090"},
        "loki": {"url": "https://loki.c/loki/api/v1/push"},
        "traces": {"otlp_endpoint": "tempo.c:4317"},
        "grafana": {"url": "https://grafana.c"},
    },
}
