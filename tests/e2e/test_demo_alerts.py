"""`flobs demo` pages: one host dies, exactly its FlobsHostDown reaches the demo's webhook, once.

The demo runs as a user runs it (``--keep-running``); everything is read where the demo
says to look: demo.json (processes, Alertmanager, notifications), the ruler's
``/api/v1/rules`` (the central Prometheus, or vmalert in remote_write mode) and the
Alertmanager's API.

Expected set, from the generated rules and inhibition (docs/alerts.md): a host whose
local Prometheus and exporters stop is FlobsHostDown (federate scrape fails, or no
``up`` written for the silence window). Its federated/written series keep their last,
healthy values (federated samples carry timestamps, so Prometheus writes no staleness
marker; a dead writer sends none), so no exporter or flintlockd alert of that host
fires; 1 of 3 hosts is below cluster_down_ratio (0.5), so no FlobsClusterDown; the
host's `up{job="federate"}` stays a series (federation) and hosts_reporting counts
it, so no FlobsHostsMissing. Anything that did fire on that host would be muted by
FlobsHostDown in the Alertmanager and must not be delivered either.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from flobs.live.demo import DEMO_ALERTS, DEMO_GROUPING, DEMO_RECEIVER
from flobs.promtime import seconds
from tests.conftest import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

T = TypeVar("T")
VICTIM = "demo-2"
DEADLINE = 240.0  # generous: CI runs two of these on two loaded cores


def _until(what: str, probe: Callable[[], T | None], timeout: float = DEADLINE) -> T:
    """Poll ``probe`` until it returns something (not None); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _demo_json(workdir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((workdir / "demo.json").read_text(encoding="utf-8"))
    return doc


def _when(rfc3339: str) -> datetime:
    # Go prints nanoseconds; Python reads at most microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def _rules(ruler: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = httpx.get(f"{ruler}/api/v1/rules", timeout=10).json()["data"][
        "groups"
    ]
    return groups


def _evaluated_after(ruler: str, when: datetime) -> Callable[[], list[dict[str, Any]] | None]:
    """Every rule group of the ruler evaluated at or after ``when``: its groups, then."""

    def probe() -> list[dict[str, Any]] | None:
        groups = _rules(ruler)
        done = groups and all(_when(g["lastEvaluation"]) >= when for g in groups)
        return groups if done else None

    return probe


def _alerts(groups: list[dict[str, Any]], state: str) -> list[tuple[str, str]]:
    return sorted(
        (a["labels"]["alertname"], a["labels"].get("host", ""))
        for g in groups
        for r in g["rules"]
        if r.get("type") == "alerting"
        for a in r.get("alerts") or []
        if a["state"] == state
    )


def _short_alerts(out: Path) -> set[str]:
    """The alerts the demo gives a short `for:` (DEMO_ALERTS), read from the rules file."""
    doc = yaml.safe_load((out / "central" / "rules" / "flobs-alerts.yml").read_text())
    short = max(seconds(v) for v in DEMO_ALERTS.values())
    return {
        r["alert"]
        for g in doc["groups"]
        for r in g["rules"]
        if "alert" in r and seconds(r.get("for", "0s")) <= short
    }


def _notifications(workdir: Path) -> list[tuple[str, str, str | None, str]]:
    return [
        (n["status"], n["alertname"], n["host"], n["receiver"])
        for n in _demo_json(workdir)["alerting"]["notifications"]
    ]


@pytest.mark.parametrize("mode", ["federation", "remote_write"])
def test_a_dying_demo_host_pages_once_and_nothing_else_arrives(tmp_path: Path, mode: str) -> None:
    for tool in ("prometheus", "prometheus-node-exporter", "alertmanager"):
        require_tool(tool)
    if mode == "remote_write":
        require_tool("victoria-metrics")
        require_tool("vmalert")
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "flobs", "demo", "--hosts", "3", "--mode", mode),
            *("--keep-running", "--workdir", str(workdir)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "400"},
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        started = time.monotonic() + DEADLINE
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("demo: running") or time.monotonic() > started:
                break
        text = "".join(lines)
        assert "demo: running" in text, text
        demo = _demo_json(workdir)
        am = demo["alerting"]["alertmanager"]
        assert am == demo["central"]["alertmanager"]
        assert re.search(
            rf"^demo: alerts: the Alertmanager delivers to the webhook "
            rf"{re.escape(demo['alerting']['webhook'])}; notifications are listed in "
            rf"{re.escape(str(workdir / 'demo.json'))} \(alerting\.notifications\)",
            text,
            re.M,
        ), text
        ruler = demo["central"]["prometheus" if mode == "federation" else "vmalert"]
        short = _short_alerts(workdir / "out")
        assert {"FlobsHostDown", "FlobsHostsMissing", "HostExporterDown"} <= short

        # Healthy: rules evaluated over more than the short `for:` since every host was
        # present (before "demo: running"); nothing fires, nothing short is pending.
        horizon = datetime.now(UTC) + timedelta(seconds=2 * seconds(DEMO_ALERTS["host_down_for"]))
        groups = _until("a healthy for: window of evaluations", _evaluated_after(ruler, horizon))
        assert _alerts(groups, "firing") == []
        assert [a for a in _alerts(groups, "pending") if a[0] in short] == []
        assert _notifications(workdir) == []

        # One host dies: its local Prometheus first (so the centre keeps its healthy last
        # values), then its exporters, as a power cut would.
        pids = {
            p["role"]: p["pid"]
            for p in demo["processes"]
            if p["host"] == VICTIM
            and p["role"] in ("prometheus", "node_exporter", "process_exporter")
        }
        assert {"prometheus", "node_exporter"} <= set(pids)
        for role in ("prometheus", "node_exporter", "process_exporter"):
            if role in pids:
                os.killpg(pids[role], signal.SIGTERM)

        got = _until("the first notification", lambda: _notifications(workdir) or None)
        assert got == [("firing", "FlobsHostDown", VICTIM, DEMO_RECEIVER)]
        first = _demo_json(workdir)["alerting"]["notifications"][0]
        assert {k: first["labels"][k] for k in ("cluster", "host", "severity")} == {
            "cluster": "demo",
            "host": VICTIM,
            "severity": "critical",
        }

        # Settle: evaluations for two more short `for:` windows plus grouping, then the
        # Alertmanager must hold nothing it has not delivered (muted alerts may stay).
        settle = 2 * seconds(DEMO_ALERTS["host_down_for"]) + sum(
            seconds(DEMO_GROUPING[k]) for k in ("group_wait", "group_interval")
        )
        horizon = _when(first["received"]) + timedelta(seconds=settle)
        groups = _until("the settle window's evaluations", _evaluated_after(ruler, horizon))
        assert _alerts(groups, "firing") == [("FlobsHostDown", VICTIM)]
        assert [a for a in _alerts(groups, "pending") if a[0] in short] == []
        held = httpx.get(f"{am}/api/v2/alerts", timeout=10).json()
        active = sorted(
            (
                a["labels"]["alertname"],
                a["labels"].get("host", ""),
                [r["name"] for r in a["receivers"]],
            )
            for a in held
            if a["status"]["state"] == "active"
        )
        assert active == [("FlobsHostDown", VICTIM, [DEMO_RECEIVER])]
        # Delivered once: the group does not repeat (repeat_interval 24h).
        assert _notifications(workdir) == [("firing", "FlobsHostDown", VICTIM, DEMO_RECEIVER)]
        log = (workdir / "logs" / "webhook.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(x)["alerts"][0]["labels"]["host"] for x in log] == [VICTIM]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
