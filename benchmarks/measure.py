"""What the benchmarks share: timing a command in a fresh process with its own peak RSS,
the floors flobs is measured against, and the ratio table.

A floor is the cost of the least work that could produce the same result on this
machine, measured in the same run as flobs, so a ratio means the same thing on a fast
laptop and a noisy CI box:
- write floor: creating the same directories and writing the same bytes with plain
  open/write, into an empty directory;
- read floor: reading every file of the tree once;
- promtool floor: `promtool check config` and `check rules` over every Prometheus file,
  the files split over two processes (one per core).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    rss_mib: float  # peak resident set of that process alone
    code: int
    stdout: str
    stderr: str
    # user + system CPU seconds of the process and the children it waited for (its
    # worker pool): on a machine shared with other jobs, wall time says little.
    cpu: float = 0.0


def child(argv: Sequence[str], cwd: Path | None = None) -> Run:
    """Run ``argv`` and read its own peak RSS from wait4 (not the max over all children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, text=True
    )
    # Read output in threads so a chatty child cannot block on a full pipe before wait4.
    with ThreadPoolExecutor(max_workers=2) as pool:
        out = pool.submit(proc.stdout.read) if proc.stdout else None
        err = pool.submit(proc.stderr.read) if proc.stderr else None
        _, status, usage = os.wait4(proc.pid, 0)
        stdout = out.result() if out else ""
        stderr = err.result() if err else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, usage.ru_maxrss / 1024, proc.returncode, stdout, stderr, cpu)


def flobs(*args: str) -> Run:
    run = child([sys.executable, "-m", "flobs", *args])
    if run.code not in (0, 1):
        sys.stderr.write(run.stdout[-4000:] + run.stderr[-4000:])
        raise SystemExit(f"flobs {' '.join(args)} exited {run.code}")
    return run


def tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def read_floor(root: Path) -> float:
    """Seconds to read every file under ``root`` once."""
    return read_floor_cpu(root)[0]


def read_floor_cpu(root: Path) -> tuple[float, float]:
    """(wall, CPU) seconds to read every file under ``root`` once."""
    start = time.perf_counter()
    cpu = time.process_time()
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                total += len(f.read())
    return time.perf_counter() - start, time.process_time() - cpu


def write_floor(source: Path, target: Path) -> float:
    """Seconds to write ``source``'s files into the empty ``target`` with open/write.

    The bytes are read first (not timed): the floor is the writing alone.
    """
    files = [(p.relative_to(source), p.read_bytes()) for p in tree_files(source)]
    start = time.perf_counter()
    made: set[Path] = set()
    for rel, data in files:
        parent = target / rel.parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        with open(target / rel, "wb") as f:
            f.write(data)
    return time.perf_counter() - start


def promtool_floor(promtool: str, out: Path) -> float:
    """Seconds for `promtool check config` + `check rules` over every file, 2 processes."""
    return promtool_floor_cpu(promtool, out)[0]


def promtool_floor_cpu(promtool: str, out: Path) -> tuple[float, float]:
    """(wall, CPU of both processes) for the promtool floor."""
    configs = [p.relative_to(out).as_posix() for p in out.glob("**/prometheus.yml")]
    rules = [p.relative_to(out).as_posix() for p in out.glob("**/rules/*.yml")]
    jobs: list[list[str]] = []
    for args, files in (
        (["check", "config", "--syntax-only"], configs),
        (["check", "rules"], rules),
    ):
        half = (len(files) + 1) // 2
        jobs += [[promtool, *args, *part] for part in (files[:half], files[half:]) if part]
    start = time.perf_counter()
    cpu = 0.0
    with ThreadPoolExecutor(max_workers=2) as pool:
        for run in pool.map(lambda argv: child(argv, cwd=out), jobs):
            if run.code not in (0, 1):
                raise SystemExit(f"promtool floor failed: {run.stderr[-2000:]}")
            cpu += run.cpu
    return time.perf_counter() - start, cpu


@dataclass(frozen=True)
class Row:
    what: str
    flobs: Run
    floor: float | None
    floor_name: str
    target: float | None  # the target ratio, when there is one
    floor_cpu: float | None = None  # CPU seconds of the floor, when measured


def table(title: str, rows: Sequence[Row]) -> str:
    """Wall-time ratios against the issue's targets; with CPU seconds measured, the CPU
    ratio too (what a loaded machine cannot distort)."""
    cpu = any(r.floor_cpu is not None for r in rows)
    head = f"  {'run':<36} {'flobs':>9} {'floor':>9} {'ratio':>7} {'target':>7} {'peak RSS':>10}"
    if cpu:
        head += f" {'cpu':>8} {'floor':>8} {'ratio':>7}"
    lines = [title, head]
    for r in rows:
        floor = f"{r.floor:8.2f}s" if r.floor is not None else "        -"
        ratio = f"{r.flobs.wall / r.floor:6.1f}x" if r.floor else "      -"
        target = f"{r.target:6.1f}x" if r.target is not None else "      -"
        line = (
            f"  {r.what:<36} {r.flobs.wall:8.2f}s {floor} {ratio} {target} "
            f"{r.flobs.rss_mib:7.0f} MiB"
        )
        if cpu:
            fc = f"{r.floor_cpu:7.2f}s" if r.floor_cpu is not None else "       -"
            cr = f"{r.flobs.cpu / r.floor_cpu:6.1f}x" if r.floor_cpu else "      -"
            line += f" {r.flobs.cpu:7.2f}s {fc} {cr}"
        lines.append(line + f"   (floor: {r.floor_name})")
    return "\n".join(lines)
