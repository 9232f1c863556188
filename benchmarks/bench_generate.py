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
import time
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
    cpu = time.process_time()
    floor_write = write_floor(out, work / "floor-write")
    floor_write_cpu = time.process_time() - cpu
    shutil.rmtree(work / "floor-write")
    cpu = time.process_time()
    floor_read = read_floor(out)
    floor_read_cpu = time.process_time() - cpu
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
    # On a shared, loaded machine wall time mostly measures the queue for a core; CPU
    # seconds (user + system, flobs and its workers; the floors' own) compare the work.
    cpu_rows = [
        f"  CPU seconds (user+sys): write floor {floor_write_cpu:.2f}s, "
        f"read floor {floor_read_cpu:.2f}s"
    ]
    for row, floor_cpu in zip(rows, (floor_write_cpu, *[floor_read_cpu] * 3), strict=True):
        ratio = row.flobs.cpu / floor_cpu if floor_cpu else float("nan")
        cpu_rows.append(f"  {row.what:<32} {row.flobs.cpu:8.2f}s cpu  {ratio:6.1f}x cpu floor")
    return table(title, rows) + "\n" + "\n".join(cpu_rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, nargs="+", default=[1_000, 10_000])
    for hosts in parser.parse_args().hosts:
        print(bench(hosts), flush=True)


if __name__ == "__main__":
    main()
