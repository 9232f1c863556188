"""`flobs verify --every --listen`: cycles scraped by a real Prometheus, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flobs.live.demo import demo_inventory, write_inventory
from flobs.live.processes import Supervisor
from flobs.live.prometheus_api import PrometheusAPI
from flobs.live.verify import VerifyReport
from flobs.live.verify_exporter import RunRecord, exposition
from tests.conftest import free_port, require_major, require_tool
from tests.e2e.fake_prometheus import Answering, healthy

pytestmark = [pytest.mark.e2e, pytest.mark.tools]


def _arrives_when(arrived: dict[str, bool]) -> Any:
    """t-2 is absent until the test says it arrived (after Prometheus saw it down)."""

    def answer(q: str) -> tuple[int, Any]:
        return 200, healthy(q, ["t-1", "t-2"] if arrived["t-2"] else ["t-1"])

    return staticmethod(answer)


def _value(api: PrometheusAPI, expr: str) -> float | None:
    got = api.query(expr)
    return got[0].value if got else None


@pytest.mark.parametrize("major", [2, 3])
def test_cycles_scraped_by_prometheus_then_sigterm(
    tmp_path: Path, answering_server: type[Answering], major: int
) -> None:
    prometheus = require_major("prometheus", major)
    inventory = tmp_path / "inventory.yaml"
    write_inventory(demo_inventory(2, tmp_path, first_address="127.0.4.11", cluster="t"), inventory)
    arrived = {"t-2": False}
    answering_server.answer = _arrives_when(arrived)
    port = free_port()
    sup = Supervisor(tmp_path / "logs")
    verifier: subprocess.Popen[str] | None = None
    try:
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs:\n- job_name: flobs-verify\n  static_configs:\n"
            f"  - targets: ['127.0.0.1:{port}']\n"
        )
        sup.start(
            "prometheus",
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
        )
        sup.wait_ready("prometheus", f"http://127.0.0.1:{prom_port}/-/ready")
        verifier = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flobs",
                "verify",
                "-i",
                str(inventory),
                "--prometheus",
                answering_server.url,  # type: ignore[attr-defined]
                "--every",
                "1s",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        with PrometheusAPI(f"http://127.0.0.1:{prom_port}") as api:
            deadline = time.monotonic() + 60
            # Prometheus scrapes t-2 down (however slowly this machine runs) …
            while _value(api, 'flobs_verify_host_up{host="t-2"}') != 0:
                assert time.monotonic() < deadline, "t-2 was never scraped down"
                assert verifier.poll() is None
                time.sleep(0.2)
            runs_then = _value(api, "flobs_verify_runs_total") or 0
            arrived["t-2"] = True
            # … then up, three cycles after it arrived.
            while (_value(api, "flobs_verify_runs_total") or 0) < runs_then + 3:
                assert time.monotonic() < deadline, "the verifier was not scraped 3 runs on"
                assert verifier.poll() is None
                time.sleep(0.2)
            assert _value(api, 'up{job="flobs-verify"}') == 1
            assert _value(api, 'flobs_verify_host_up{host="t-1"}') == 1
            assert _value(api, 'flobs_verify_host_up{host="t-2"}') == 1
            # … and was down before: Prometheus saw the change across cycles.
            assert _value(api, 'min_over_time(flobs_verify_host_up{host="t-2"}[5m])') == 0
            assert _value(api, 'min_over_time(flobs_verify_host_up{host="t-1"}[5m])') == 1
            assert _value(api, "flobs_verify_ok") == 1
            assert _value(api, 'flobs_verify_freshness_seconds{host="t-1",signal="metrics"}') == 1.5
            assert _value(api, "flobs_verify_errors_total") == 0
            assert _value(api, "time() - flobs_verify_last_run_timestamp_seconds") < 10
    finally:
        sup.stop_all()
        if verifier is not None:
            verifier.send_signal(signal.SIGTERM)
            out, err = verifier.communicate(timeout=20)
    assert verifier is not None
    assert verifier.returncode == 0, err
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"verify: every 1s; metrics at http://127.0.0.1:{port}/metrics"
    assert lines[1].startswith("verify: run 1 (") and "FAILED: 1/2 hosts present" in lines[1]
    assert "OK: 2/2 hosts present, 0 query errors" in lines[-2]
    assert lines[-1] == "verify: stopped"


def test_exposition_passes_promtool_and_escapes_labels() -> None:
    promtool = require_tool("promtool")
    from flobs.live.verify import HostStatus

    report = VerifyReport("http://p", "federation", 15.0)
    report.hosts = [
        HostStatus('we"ird\\host\nx', "present", 3, 1.25, ""),
        HostStatus("h-2", "stale", 3, 99.0, ""),
    ]
    page = exposition(report, RunRecord(runs=2, last_started=1.7e9), [h.name for h in report.hosts])
    assert 'flobs_verify_host_up{host="we\\"ird\\\\host\\nx"} 1\n' in page
    assert 'flobs_verify_host_up{host="h-2"} 0\n' in page
    assert 'flobs_verify_hosts{state="stale"} 1\n' in page
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=page, capture_output=True, text=True, check=False
    )
    # promtool lints names and help; counters must end in _total, which ours do.
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_exposition_has_per_signal_freshness_and_state() -> None:
    from flobs.live.signals import HostSignals, SignalStatus

    report = VerifyReport("http://p", "federation", 15.0)
    report.signals = [
        HostSignals("h-1", SignalStatus("present", 2.5, ""), {}, SignalStatus("missing", None, "")),
    ]
    page = exposition(report, RunRecord(), ["h-1"])
    assert 'flobs_verify_freshness_seconds{host="h-1",signal="logs"} 2.5\n' in page
    assert 'flobs_verify_signal_up{host="h-1",signal="logs"} 1\n' in page
    assert 'flobs_verify_signal_up{host="h-1",signal="traces"} 0\n' in page
    assert 'signal="correlation"' not in page
