"""Running real tools over generated files: promtool in batches, and finding the others.

promtool takes many files per call and prints one block per file, so a fleet of
10,000 hosts costs a few dozen processes instead of 20,000. Each block is mapped
back to its file; a block that says ``FAILED`` becomes a ``ToolFinding``. A tool
that cannot start, dies from a signal, or prints nothing we can attribute to the
files we gave it raises ``ToolFailure`` (exit 3): its findings cannot be trusted.

promtool 2.42 output, observed with ``2>&1`` (one pipe keeps the order)::

    Checking hosts/a/prometheus.yml
     SUCCESS: hosts/a/prometheus.yml is valid prometheus config file syntax

    Checking hosts/b/prometheus.yml
      FAILED: parsing YAML file hosts/b/prometheus.yml: global scrape timeout …

``test rules`` uses ``Unit Testing:  FILE`` as its header in 2.x and
``Processing test file: FILE`` in 3.x (3.16 observed).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from flobs.errors import ToolFailure

# Files per promtool call: keeps the command line far below ARG_MAX (2 MiB on Linux)
# even for long host names, and gives the thread pool several batches to share.
BATCH_SIZE = 400
# promtool is CPU-bound; one process per core is as fast as it gets.
MAX_WORKERS = max(1, min(4, os.cpu_count() or 1))
TIMEOUT_S = 600

# Executable names per tool, in order of preference (the OTel contrib build is the
# one most people install).
TOOL_NAMES: dict[str, tuple[str, ...]] = {
    "promtool": ("promtool",),
    "promtail": ("promtail",),
    "alloy": ("alloy",),
    "otelcol": ("otelcol", "otelcol-contrib"),
    "amtool": ("amtool",),
    # Debian renames the binary (package prometheus-alertmanager).
    "alertmanager": ("alertmanager", "prometheus-alertmanager"),
}

# `make tools` links the Go-built programs here, in a checkout (docs/testing.md).
CHECKOUT_TOOLS = Path(__file__).resolve().parent.parent / ".tools" / "bin"


@dataclass(frozen=True)
class ToolFinding:
    """A file a tool rejected: its message, and the line when the tool said it."""

    path: str  # as given to the tool (relative to OUT)
    message: str
    line: int | None = None
    lint: bool = False  # promtool lint complaints (duplicate rules) are warnings


def search_path() -> list[str]:
    """Where tools are looked for: ``$FLOBS_TOOLS_PATH`` (else a checkout's ``.tools/bin``),
    then PATH.

    The Go-built programs (Prometheus 3's promtool, our collector) come first so that
    they win over older ones on PATH; promtool is then picked per major version anyway.
    Setting ``FLOBS_TOOLS_PATH`` (even empty) replaces the checkout's directory.
    """
    if "FLOBS_TOOLS_PATH" in os.environ:
        dirs = [d for d in os.environ["FLOBS_TOOLS_PATH"].split(os.pathsep) if d]
    else:
        dirs = [str(CHECKOUT_TOOLS)] if CHECKOUT_TOOLS.is_dir() else []
    dirs.extend(d for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d)
    return list(dict.fromkeys(dirs))


def find_all(tool: str) -> list[str]:
    """Every executable for ``tool`` along the search path, best first, no duplicates."""
    found: list[str] = []
    for directory in search_path():
        for name in TOOL_NAMES.get(tool, (tool,)):
            path = shutil.which(name, path=directory)
            if path and os.path.realpath(path) not in map(os.path.realpath, found):
                found.append(path)
    return found


def find_tool(tool: str) -> str | None:
    if tool == "promtool":
        majors = promtools()
        if majors:
            return majors[max(majors)]
    found = find_all(tool)
    return found[0] if found else None


_VERSION = re.compile(r"version (?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)")


@functools.cache
def tool_version(path: str) -> str | None:
    """``X.Y.Z`` from ``TOOL --version`` (promtool, prometheus, amtool print it so)."""
    try:
        proc = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION.search(proc.stdout + proc.stderr)
    return f"{m['major']}.{m['minor']}.{m['patch']}" if m else None


def by_major(tool: str) -> dict[int, str]:
    """The first ``tool`` of each major version on the search path: ``{2: …, 3: …}``."""
    found: dict[int, str] = {}
    for path in find_all(tool):
        version = tool_version(path)
        if version is not None:
            found.setdefault(int(version.split(".")[0]), path)
    return found


def promtools() -> dict[int, str]:
    """promtool per major version.

    Prometheus 2 and 3 disagree on what a valid file is (3 refuses a scrape without a
    usable Content-Type unless ``fallback_scrape_protocol`` is set; 2 refuses that key),
    so each file is checked by the promtool of the version it is for.
    """
    return by_major("promtool")


def _run(command: Sequence[str], cwd: Path) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            list(command),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as err:
        raise ToolFailure(command, None, str(err)) from err
    except OSError as err:
        raise ToolFailure(command, None, str(err)) from err
    except subprocess.TimeoutExpired as err:
        raise ToolFailure(command, None, f"no answer after {TIMEOUT_S} s") from err
    return proc.returncode, proc.stdout


def _batches(files: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(files), size):
        yield list(files[start : start + size])


_HEADERS = {
    "check": re.compile(r"^Checking (?P<path>.+)$"),
    "test": re.compile(r"^(?:Unit Testing:|Processing test file:)\s+(?P<path>.+)$"),
}
# `FILE: 9:15: group "x", rule 1, …` — promtool's located rule errors.
_LOCATED = re.compile(r"^(?P<path>.+?): (?P<line>\d+):(?P<col>\d+): (?P<msg>.*)$")


def parse_promtool_output(output: str, files: Sequence[str], kind: str) -> dict[str, str | None]:
    """Split promtool's output into ``{file: failure text or None}``.

    Raises ``ValueError`` when a file we passed has no block: the tool stopped early.
    """
    header = _HEADERS[kind]
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        m = header.match(line)
        if m and m.group("path") in files:
            current = blocks.setdefault(m.group("path"), [])
            continue
        if current is not None:
            current.append(line)
    missing = [f for f in files if f not in blocks]
    if missing:
        raise ValueError(f"no result for {missing[0]}")
    result: dict[str, str | None] = {}
    for path, lines in blocks.items():
        body = "\n".join(lines).strip()
        failed = any(x.strip().startswith("FAILED") for x in lines)
        result[path] = body if failed else None
    return result


def _findings_from_block(path: str, body: str) -> list[ToolFinding]:
    """One finding per located error in a FAILED block, else one for the whole block."""
    text = re.sub(r"^\s*FAILED:\s*", "", body, count=1).strip()
    lint = text.startswith("lint error")
    found: list[ToolFinding] = []
    for line in text.splitlines():
        m = _LOCATED.match(line.strip())
        if m and m.group("path").endswith(path):
            found.append(ToolFinding(path, m.group("msg"), int(m.group("line")), lint))
    if found:
        return found
    # Messages repeat the (relative) path we passed; it is already the finding's file.
    lines = [x.strip().removeprefix(f"{path}: ") for x in text.splitlines() if x.strip()]
    message = " ".join(lines) or "failed"
    return [ToolFinding(path, message, None, lint)]


def run_promtool(
    promtool: str,
    args: Sequence[str],
    files: Sequence[str],
    cwd: Path,
    *,
    kind: str = "check",
    runner: Callable[[Sequence[str], Path], tuple[int, str]] = _run,
) -> list[ToolFinding]:
    """``promtool ARGS FILE…`` in batches, in parallel; findings per file.

    Exit 0 and 1 are normal (1 = something FAILED); any other code, a signal, or
    output missing a block for one of our files is a crash.
    """
    batches = list(_batches(sorted(files), BATCH_SIZE))

    def one(batch: list[str]) -> list[ToolFinding]:
        command = [promtool, *args, *batch]
        code, output = runner(command, cwd)
        if code not in (0, 1):
            raise ToolFailure([promtool, *args, f"<{len(batch)} files>"], code, output[-4000:])
        try:
            blocks = parse_promtool_output(output, batch, kind)
        except ValueError as err:
            raise ToolFailure(
                [promtool, *args, f"<{len(batch)} files>"],
                code,
                f"{err}; output was:\n{output[-4000:]}",
            ) from err
        if code == 1 and all(v is None for v in blocks.values()):
            raise ToolFailure([promtool, *args, f"<{len(batch)} files>"], code, output[-4000:])
        found: list[ToolFinding] = []
        for path, body in blocks.items():
            if body is not None:
                found.extend(_findings_from_block(path, body))
        return found

    if not batches:
        return []
    if len(batches) == 1:
        return one(batches[0])
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        results = list(pool.map(one, batches))
    return [f for part in results for f in part]


def run_amtool(
    amtool: str,
    args: Sequence[str],
    cwd: Path,
    *,
    runner: Callable[[Sequence[str], Path], tuple[int, str]] = _run,
) -> tuple[int, str]:
    """``amtool ARGS``: (exit code, output). Exit 1 is a finding; anything else a crash."""
    code, output = runner([amtool, *args], cwd)
    if code not in (0, 1):
        raise ToolFailure([amtool, *args], code, output[-4000:])
    return code, output
