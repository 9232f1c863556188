"""`flobs simulate` through the real entry point, over real loopback HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from flobs.model import Fleet
from tests.helpers import run_flobs


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 15) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_serves_the_inventory_endpoints_and_stops_on_sigterm(
    sim_inventory: Path, sim_fleet: Fleet, tmp_path: Path
) -> None:
    host = sim_fleet.hosts[0]
    v = host.vars
    log = tmp_path / "flintlockd.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flobs",
            "simulate",
            host.name,
            "-i",
            str(sim_inventory),
            "--seed",
            "7",
            "--log-file",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        metrics = wait_http(f"http://{v.flintlockd.metrics_endpoint}/metrics", proc)
        assert metrics.status_code == 200
        names = {f.name for f in text_string_to_metric_families(metrics.text)}
        assert {"grpc_server_handled", "grpc_server_started", "go_goroutines"} <= names
        machine = httpx.get(f"http://{v.flintlock_metrics.endpoint}/machine", timeout=2)
        assert machine.status_code == 200
        assert "# TYPE" not in machine.text
        uid = machine.text.split('uid="', 1)[1].split('"', 1)[0]
        one = httpx.get(f"http://{v.flintlock_metrics.endpoint}/machine/uid/{uid}", timeout=2)
        assert one.status_code == 200
        assert {line.split('uid="')[1][:26] for line in one.text.splitlines()} == {uid}
        missing = httpx.get(f"http://{v.flintlock_metrics.endpoint}/nope", timeout=2)
        assert missing.status_code == 404
        deadline = time.monotonic() + 10
        while not (log.exists() and '"msg"' in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)  # a tick writes 0-2 lines
        assert '"level"' in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"simulating {host.name} (seed 7)" in err
    assert str(v.flintlockd.metrics_endpoint) in err


def test_unknown_host_is_a_usage_error(sim_inventory: Path) -> None:
    r = run_flobs("simulate", "no-such-host", "-i", sim_inventory, "--no-logs")
    assert r.code == 2
    assert "host `no-such-host` is not in" in r.stderr
    assert "demo-1" in r.stderr


def test_port_in_use_exits_3_naming_the_endpoint(sim_inventory: Path, sim_fleet: Fleet) -> None:
    ep = sim_fleet.hosts[0].vars.flintlockd.metrics_endpoint
    assert ep is not None
    with socket.socket() as blocker:
        blocker.bind((ep.host, ep.port))
        blocker.listen()
        r = run_flobs("simulate", "demo-1", "-i", sim_inventory, "--no-logs", "--duration", "1")
    assert r.code == 3
    assert f"cannot listen on {ep}" in r.stderr


def test_a_failed_start_leaves_sigterm_as_it_was(sim_inventory: Path, sim_fleet: Fleet) -> None:
    from typer.testing import CliRunner

    from flobs.cli import _register, app

    _register()
    ep = sim_fleet.hosts[0].vars.flintlockd.metrics_endpoint
    assert ep is not None
    before = signal.getsignal(signal.SIGTERM)
    with socket.socket() as blocker:
        blocker.bind((ep.host, ep.port))
        blocker.listen()
        result = CliRunner().invoke(
            app, ["simulate", "demo-1", "-i", str(sim_inventory), "--no-logs", "--duration", "1"]
        )
    assert result.exit_code == 3, result.output
    assert signal.getsignal(signal.SIGTERM) is before
