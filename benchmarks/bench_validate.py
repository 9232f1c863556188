"""Benchmark `flobs validate` against floors measured in the same run.

Generates the fleet once (benchmarks.fleet), then runs `flobs validate OUT -i INVENTORY`
in a fresh process per mode, as CI would: `--tools auto` on a fresh tree (an empty result
cache) against the promtool floor (promtool check config + check rules over every file,
two processes), the same again on the unchanged tree (the cache warm) against the read
floor, again after one host's file was edited by hand, and `--tools off` without the
cache. Prints ratios, peak RSS, and the first findings (a finding that only shows at
scale is a result too).
Usage: python benchmarks/bench_validate.py [--hosts 1000 10000]
Targets (issue 16, 10,000 hosts): fresh <= 2x the promtool floor, unchanged <= 3x the
read floor, peak RSS <= 400 MiB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleet import write_inventory
from benchmarks.measure import (
    Row,
    flobs,
    promtool_floor_cpu,
    read_floor,
    read_floor_cpu,
    table,
    tree_files,
)
from flobs import tools

WORK = Path(__file__).resolve().parent / ".work"


def bench(hosts: int) -> str:
    work = WORK / f"validate-{hosts}"
    shutil.rmtree(work, ignore_errors=True)
    inv = work / "inventory.yaml"
    write_inventory(inv, hosts)
    out = work / "out"
    flobs("generate", "-i", str(inv), "-o", str(out), "-q")
    files = len(tree_files(out))
    lines: list[str] = []
    # The fleet is written for the default Prometheus (3.x): its promtool is the floor.
    promtool = tools.promtools().get(3)
    rows: list[Row] = []
    read_floor(out)  # once unmeasured, so every run finds the tree in the page cache
    read_wall, read_cpu = read_floor_cpu(out)
    cache = work / "cache"  # the result cache, empty at the start of each run
    validate = ["validate", str(out), "-i", str(inv), "--format", "json", "--stats"]
    cached = [*validate, "--cache-dir", str(cache)]
    if promtool:
        floor_tools, floor_tools_cpu = promtool_floor_cpu(promtool, out)
        fresh = flobs(*cached, "--tools", "auto")
        rows.append(
            Row(
                "validate --tools auto, fresh", fresh, floor_tools, "promtool", 2.0, floor_tools_cpu
            )
        )
        again = flobs(*cached, "--tools", "auto")
        rows.append(
            Row("validate --tools auto, unchanged", again, read_wall, "read", 3.0, read_cpu)
        )
        host_config = sorted(out.glob("hosts/*/prometheus.yml"))[0]
        host_config.write_text(host_config.read_text() + "# edited by hand\n")
        edited = flobs(*cached, "--tools", "auto")
        rows.append(
            Row("validate --tools auto, 1 file edited", edited, read_wall, "read", None, read_cpu)
        )
        report = json.loads(fresh.stdout)
        for what, run in (("fresh", fresh), ("unchanged", again), ("1 edited", edited)):
            stats = [x for x in run.stderr.splitlines() if x.startswith("stats:")]
            lines.append(f"  {what}: {stats[0] if stats else 'no stats line'}")
    else:
        lines.append("  promtool 3.x not found (make tools): --tools auto is not timed")
    off = flobs(*validate, "--tools", "off", "--no-cache")
    rows.append(Row("validate --tools off, no cache", off, read_wall, "read", None, read_cpu))
    if not promtool:
        report = json.loads(off.stdout)
    s = report["summary"]
    lines.append(f"  findings: {s['errors']} errors, {s['warnings']} warnings")
    for problem in report["problems"][:5]:
        lines.append(f"    {problem['check']}: {problem['file']}: {problem['message'][:160]}")
    return table(f"flobs validate, {hosts} hosts, {files} files", rows) + "\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, nargs="+", default=[1_000, 10_000])
    for hosts in parser.parse_args().hosts:
        print(bench(hosts), flush=True)


if __name__ == "__main__":
    main()
