"""`flobs demo` through the real entry point: summary, Ctrl-C teardown, missing binaries."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import require_tool
from tests.helpers import run_flobs


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes containing ``text`` (procps may not be installed)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        if text in args:
            found.append(args)
    return found


def _python_only_path(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return str(bin_dir)


def test_missing_binaries_exit_3_with_the_install_command(tmp_path: Path) -> None:
    env = {"PATH": _python_only_path(tmp_path), "FLOBS_TOOLS_PATH": ""}
    r = run_flobs("demo", "--hosts", "2", env=env)
    assert r.code == 3
    assert "needed binaries are not installed: prometheus, prometheus-node-exporter" in r.stderr
    assert "apt-get install prometheus prometheus-node-exporter" in r.stderr
    assert r.stdout == ""


@pytest.mark.e2e
@pytest.mark.tools
def test_demo_reports_every_host_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    require_tool("prometheus")
    require_tool("prometheus-node-exporter")
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flobs",
            "demo",
            "--hosts",
            "2",
            "--keep-running",
            "--workdir",
            str(workdir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240  # the demo bounds its own waits; this only stops a hang
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("demo: running") or time.monotonic() > deadline:
                break
        text = "".join(lines)
        assert "hosts: 2/2 present" in text, text
        assert "result: OK" in text
        assert re.search(
            r"^panels with data:\n  Flintlock / Fleet overview: .*Hosts up", text, re.M
        )
        summary = re.search(
            r"^panels: \d+ \((\d+) with data, (\d+) partial, (\d+) without data", text, re.M
        )
        assert summary, text
        data, partial, none = summary.groups()
        # The demo line counts the same panels as verify's summary.
        assert re.search(
            rf"^demo: 2/2 hosts present after \d+s; {data} panels with data, "
            rf"{partial} partial, {none} without$",
            text,
            re.M,
        ), text
        assert int(data) > 0
        m = re.search(r"^demo: central \(federation\): (http://\S+)$", text, re.M)
        assert m, text
        central = m.group(1)
        up = httpx.get(f"{central}/api/v1/query", params={"query": 'up{job="federate"}'})
        assert len(up.json()["data"]["result"]) == 2
        assert (workdir / "inventory.yaml").is_file()
        assert (workdir / "out" / "manifest.json").is_file()
        assert len(_processes_mentioning(str(workdir))) >= 4  # 2 local + central + exporters
        demo = json.loads((workdir / "demo.json").read_text(encoding="utf-8"))
        assert demo["central"]["prometheus"] == central
        roles = [(p["role"], p["host"]) for p in demo["processes"]]
        for host in ("demo-1", "demo-2"):
            assert ("simulator", host) in roles and ("prometheus", host) in roles
            assert ("node_exporter", host) in roles
        assert ("prometheus", None) in roles
        for entry in demo["processes"]:
            assert set(entry) == {"role", "host", "pid", "url", "log"}
            assert Path(f"/proc/{entry['pid']}").exists(), entry
        if demo["central"]["logs"]:  # the log/trace tools are installed
            assert ("victoria-logs", None) in roles and ("jaeger", None) in roles
            assert ("otelcol", "demo-1") in roles
            assert re.search(
                r"^signals: demo-1: [1-9]\d* log lines in VictoriaLogs, [1-9]", text, re.M
            )
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    # Every process the demo started is gone: the centre no longer answers.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{central}/-/ready", timeout=2)
    assert _processes_mentioning(str(workdir)) == []


@pytest.mark.e2e
@pytest.mark.tools
def test_without_alertmanager_the_demo_runs_and_says_alerts_are_off(tmp_path: Path) -> None:
    # Only what the federation demo needs on PATH: no Alertmanager, no `make tools`.
    bin_dir = Path(_python_only_path(tmp_path))
    for name in ("prometheus", "prometheus-node-exporter"):
        (bin_dir / name).symlink_to(require_tool(name))
    workdir = tmp_path / "demo"
    env = {"PATH": str(bin_dir), "FLOBS_TOOLS_PATH": ""}
    r = run_flobs("demo", "--hosts", "1", "--workdir", workdir, env=env, timeout=240)
    assert r.code == 0, r.stderr
    assert (
        "demo: alerts off: alertmanager not installed (apt-get install prometheus-alertmanager)\n"
        in r.stderr
    )
    assert "demo: alerts:" not in r.stdout
    demo = json.loads((workdir / "demo.json").read_text(encoding="utf-8"))
    assert demo["alerting"] == {"alertmanager": None, "webhook": None, "notifications": []}
    assert demo["central"]["alertmanager"] is None
    assert "webhook" not in [p["role"] for p in demo["processes"]]
    inventory = yaml.safe_load((workdir / "inventory.yaml").read_text(encoding="utf-8"))
    assert "alertmanager" not in inventory["central"]
