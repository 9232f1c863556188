"""The generated exporter configs work in the real Debian binaries.

node_exporter is started with the generated web config, and process-exporter with
the generated process groups; each is scraped once on a free loopback port.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, require_tool

pytestmark = pytest.mark.tools


@contextmanager
def running(cmd: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def scrape(proc: subprocess.Popen[bytes], url: str, deadline: float = 10.0) -> str:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"exporter exited {proc.returncode}:\n{out}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response.text
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {deadline}s")


def test_node_exporter_runs_with_generated_web_config(example_out: Path) -> None:
    binary = require_tool("prometheus-node-exporter", "node_exporter")
    web = example_out / "hosts" / "fl-eu1-a-01" / "exporters" / "node_exporter-web.yml"
    port = free_port()
    with running(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web}",
            "--collector.disable-defaults",
            "--collector.loadavg",
            "--collector.meminfo",
        ]
    ) as proc:
        body = scrape(proc, f"http://127.0.0.1:{port}/metrics")
    # Series the local recording rules read come out of this exporter.
    assert "node_load1 " in body
    assert "node_memory_MemAvailable_bytes " in body


def test_process_exporter_matches_groups_by_executable(example_out: Path, tmp_path: Path) -> None:
    binary = require_tool("prometheus-process-exporter", "process-exporter")
    # fl-eu1-a-03 runs Cloud Hypervisor (vars.providers), so it has that group.
    config = example_out / "hosts" / "fl-eu1-a-03" / "exporters" / "process-exporter.yml"
    # Processes whose executables are named like Flintlock's VMMs: `cloud-hypervisor`
    # is 16 characters, one more than the kernel keeps in comm, which is why the groups
    # match on the executable name; `cloud-hypervisor-static` is the binary Flintlock
    # starts by default (flintlock-facts.md), and both count in one group.
    fakes = [tmp_path / "cloud-hypervisor", tmp_path / "cloud-hypervisor-static"]
    for fake in fakes:
        fake.symlink_to("/bin/sleep")
    port = free_port()
    want = 'namedprocess_namegroup_num_procs{groupname="cloud-hypervisor"} 2'
    with (
        running([str(fakes[0]), "30"]) as first,
        running([str(fakes[1]), "30"]) as second,
        running(
            [binary, f"-web.listen-address=127.0.0.1:{port}", f"-config.path={config}"]
        ) as proc,
    ):
        body = ""
        end = time.monotonic() + 10
        while time.monotonic() < end and want not in body.splitlines():
            body = scrape(proc, f"http://127.0.0.1:{port}/metrics")
            time.sleep(0.2)
        assert first.poll() is None and second.poll() is None
    line = next(
        ln
        for ln in body.splitlines()
        if ln.startswith('namedprocess_namegroup_num_procs{groupname="cloud-hypervisor"}')
    )
    assert line == want
