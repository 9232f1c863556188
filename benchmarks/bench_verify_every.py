"""Memory of `flobs verify --every` over time: it must not grow after warm-up.

Runs the real CLI (`verify --every INTERVAL --listen`) against a fake Prometheus that
answers like a centre holding every host of an N-host fleet, with a generated OUT so
every dashboard query and rule runs each cycle; scrapes /metrics like a Prometheus
would; prints the verifier's RSS (VmRSS) every SAMPLE seconds and the growth after
warm-up at the end.
Usage: python benchmarks/bench_verify_every.py [--hosts 200] [--every 1s]
       [--minutes 30] [--sample 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleet import write_inventory
from flobs.generate import generate
from tests.e2e.fake_prometheus import Answering, healthy

WORK = Path(__file__).resolve().parent / ".work" / "verify-every"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--every", default="1s")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--sample", type=float, default=30)
    opts = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    inventory = WORK / "inventory.yaml"
    write_inventory(inventory, opts.hosts)
    fleet = generate(inventory, WORK / "out").fleet
    names = [h.name for h in fleet.hosts]

    def answer(q: str) -> tuple[int, Any]:
        return 200, healthy(q, names)

    handler = type("Handler", (Answering,), {"answer": staticmethod(answer)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flobs",
            "verify",
            "-i",
            str(inventory),
            "--out",
            str(WORK / "out"),
            "--prometheus",
            f"http://127.0.0.1:{server.server_address[1]}",
            "--every",
            opts.every,
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    started = time.monotonic()
    samples: list[tuple[float, float, str]] = []
    print(f"hosts={opts.hosts} every={opts.every} minutes={opts.minutes:g}", flush=True)
    try:
        while (elapsed := time.monotonic() - started) < opts.minutes * 60:
            time.sleep(opts.sample)
            runs = "?"
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                runs = next(
                    ln.split()[1]
                    for ln in page.splitlines()
                    if ln.startswith("flobs_verify_runs_total ")
                )
            except httpx.HTTPError:
                pass
            rss = rss_mib(proc.pid)
            samples.append((elapsed + opts.sample, rss, runs))
            print(f"t={elapsed + opts.sample:7.0f}s rss={rss:7.1f} MiB runs={runs}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        server.shutdown()
    warm = [rss for t, rss, _ in samples if t >= 120] or [s[1] for s in samples]
    print(
        f"after warm-up (t>=120s): min {min(warm):.1f} MiB, max {max(warm):.1f} MiB, "
        f"last {warm[-1]:.1f} MiB, growth {warm[-1] - warm[0]:+.1f} MiB; exit {code}"
    )


if __name__ == "__main__":
    main()
