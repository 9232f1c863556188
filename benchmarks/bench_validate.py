"""Benchmark `flobs validate` on a large fleet, without and with promtool.

Generates the fleet once (benchmarks.fleet), then runs `flobs validate OUT -i INVENTORY`
in a fresh process per mode, as CI would, and prints wall time, peak RSS and the
findings (the first few named: a finding that only shows at scale is a result too).
Usage: python benchmarks/bench_validate.py [--hosts 10000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleet import write_inventory

WORK = Path(__file__).resolve().parent / ".work"


def flobs(args: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, peak RSS MiB over children so far, the process)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "flobs", *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak, proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; the best is shown")
    opts = parser.parse_args()
    work = WORK / f"validate-{opts.hosts}"
    shutil.rmtree(work, ignore_errors=True)
    inv = work / "inventory.yaml"
    write_inventory(inv, opts.hosts)
    out = work / "out"
    wall, _, proc = flobs(["generate", "-i", str(inv), "-o", str(out), "-q"])
    if proc.returncode != 0:
        raise SystemExit(f"generate failed:\n{proc.stderr}")
    files = sum(1 for p in out.rglob("*") if p.is_file())
    print(f"flobs validate, {opts.hosts} hosts, {files} files (generated in {wall:.1f} s)")
    promtool = shutil.which("promtool")
    modes = [("--tools off", "off")]
    if promtool:
        modes.append(("--tools auto (promtool)", "auto"))
    else:
        print("  promtool is not on PATH: only --tools off is timed")
    for label, mode in modes:
        best = None
        for _ in range(opts.repeat):
            wall, rss, proc = flobs(
                ["validate", str(out), "-i", str(inv), "--tools", mode, "--format", "json"]
            )
            if proc.returncode not in (0, 1):
                sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
                raise SystemExit(f"validate --tools {mode} exited {proc.returncode}")
            best = wall if best is None else min(best, wall)
        report = json.loads(proc.stdout)
        s = report["summary"]
        print(
            f"  {label:<24} {best:7.2f} s   peak RSS {rss:6.0f} MiB   "
            f"{s['checks']} checks, {s['errors']} errors, {s['warnings']} warnings"
        )
        # A finding at scale is a result too: say which checks and where.
        for problem in report["problems"][:5]:
            print(f"    {problem['check']}: {problem['file']}: {problem['message'][:160]}")


if __name__ == "__main__":
    main()
