"""Benchmark `flobs generate` against floors measured in the same run.

For each fleet size: cold (empty OUT) against the write floor; nothing changed and one
host's label changed against the read floor; `--check` against the read floor. Each
flobs run is a fresh process, as a user runs it, with its own peak RSS (wait4).
Usage: python benchmarks/bench_generate.py [--hosts 1000 10000]
Targets (issue 16, 10,000 hosts): cold <= 1.3x, unchanged <= 3x, one changed <= 4x,
peak RSS <= 400 MiB.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleet import write_inventory
from benchmarks.measure import Row, flobs, read_floor, table, tree_files, write_floor

WORK = Path(__file__).resolve().parent / ".work"


def bench(hosts: int) -> str:
    work = WORK / f"gen-{hosts}"
    shutil.rmtree(work, ignore_errors=True)
    inv = work / "inventory.yaml"
    write_inventory(inv, hosts)
    out = work / "out"
    gen = ["generate", "-i", str(inv), "-o", str(out), "-q"]
    cold = flobs(*gen)
    files = tree_files(out)
    size = sum(p.stat().st_size for p in files)
    floor_write = write_floor(out, work / "floor-write")
    shutil.rmtree(work / "floor-write")
    floor_read = read_floor(out)
    unchanged = flobs(*gen)
    check = flobs(*gen, "--check")
    inv.write_text(inv.read_text().replace("rack: r0000\n", "rack: r9999\n", 1))
    one = flobs(*gen)
    rows = [
        Row("generate, cold (empty OUT)", cold, floor_write, "write", 1.3),
        Row("generate, nothing changed", unchanged, floor_read, "read", 3.0),
        Row("generate --check, unchanged", check, floor_read, "read", None),
        Row("generate, one host's label", one, floor_read, "read", 4.0),
    ]
    title = (
        f"flobs generate, {hosts} hosts: {len(files)} files, {size / 1e6:.1f} MB "
        f"(inventory {inv.stat().st_size / 1e6:.1f} MB)"
    )
    return table(title, rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, nargs="+", default=[1_000, 10_000])
    for hosts in parser.parse_args().hosts:
        print(bench(hosts), flush=True)


if __name__ == "__main__":
    main()
