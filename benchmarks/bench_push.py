"""Benchmark `flobs push-dashboards` against the fake Grafana with per-request latency.

A real Grafana answers a dashboard save in tens of milliseconds; the fake adds that
latency to every dashboard read and save, so the figures show what --concurrency buys.
Prints wall time of a first push (all creates) and of a second one (all unchanged).
Usage: python benchmarks/bench_push.py [--dashboards 200] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.grafana.fake_grafana import FakeGrafana, Fault
from tests.grafana.grafana_cases import TOKEN, dashboard

WORK = Path(__file__).resolve().parent / ".work" / "push"


def push(url: str, out: Path, concurrency: int) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flobs",
            "push-dashboards",
            str(out),
            "--grafana-url",
            url,
            "--concurrency",
            str(concurrency),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GRAFANA_TOKEN": TOKEN},
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"push exited {proc.returncode}")
    return time.perf_counter() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dashboards", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    boards = WORK / "out" / "grafana" / "dashboards"
    boards.mkdir(parents=True)
    uids = [f"bench-{i:04d}" for i in range(args.dashboards)]
    for uid in uids:
        (boards / f"{uid}.json").write_text(json.dumps(dashboard(uid)), encoding="utf-8")
    print(f"{args.dashboards} dashboards, {args.latency * 1000:.0f} ms latency per request")
    for concurrency in (1, 4, 8):
        fake = FakeGrafana()
        fake.add_token(TOKEN)
        fake.start()
        try:
            for _round in range(2):
                for uid in uids:
                    fake.fault("GET", f"/api/dashboards/uid/{uid}", Fault(delay=args.latency))
                fake.fault(
                    "POST", "/api/dashboards/db", *[Fault(delay=args.latency)] * args.dashboards
                )
            first, _ = push(fake.url, WORK / "out", concurrency)
            second, _ = push(fake.url, WORK / "out", concurrency)
            writes = len(fake.writes())
        finally:
            fake.stop()
        print(
            f"--concurrency {concurrency}: first push {first:6.2f} s, "
            f"unchanged push {second:6.2f} s, {writes} writes in total"
        )


if __name__ == "__main__":
    main()
