"""Benchmark `flobs generate` on a large fleet: cold, warm (nothing changed), one host changed.

Prints wall time and peak RSS of each run (each in a fresh process, as a user runs it).
Usage: python benchmarks/bench_generate.py [--hosts 10000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleet import write_inventory

WORK = Path(__file__).resolve().parent / ".work"


def run(args: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB of the child, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "flobs", *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"flobs {' '.join(args)} exited {proc.returncode}")
    # ru_maxrss of children is the max over all children so far; runs go from light to
    # heavy only by accident, so report the larger of the two readings honestly.
    return wall, max(peak, before) / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000)
    opts = parser.parse_args()
    work = WORK / f"gen-{opts.hosts}"
    shutil.rmtree(work, ignore_errors=True)
    inv = work / "inventory.yaml"
    write_inventory(inv, opts.hosts)
    out = work / "out"
    print(f"flobs generate, {opts.hosts} hosts ({inv.stat().st_size / 1e6:.1f} MB inventory)")
    wall, rss, _ = run(["generate", "-i", str(inv), "-o", str(out), "-q"])
    files = sum(1 for p in out.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"  cold:        {wall:7.2f} s   peak RSS {rss:6.0f} MiB   {files} files, "
        f"{size / 1e6:.1f} MB"
    )
    wall, rss, _ = run(["generate", "-i", str(inv), "-o", str(out), "-q"])
    print(f"  warm:        {wall:7.2f} s   peak RSS {rss:6.0f} MiB   (nothing changed)")
    wall, rss, code = run(["generate", "-i", str(inv), "-o", str(out), "--check", "-q"])
    print(f"  --check:     {wall:7.2f} s   peak RSS {rss:6.0f} MiB   exit {code}")
    text = inv.read_text().replace("rack: r0000\n", "rack: r9999\n", 1)
    inv.write_text(text)
    wall, rss, _ = run(["generate", "-i", str(inv), "-o", str(out), "-q"])
    print(f"  one changed: {wall:7.2f} s   peak RSS {rss:6.0f} MiB   (one host's label)")


if __name__ == "__main__":
    main()
