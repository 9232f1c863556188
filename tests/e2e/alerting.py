"""A real Alertmanager next to a test fleet, delivering to flobs' webhook sink.

Fleets whose inventory has ``central.alertmanager`` start their Alertmanager (and, in
remote_write mode, vmalert) themselves (``flobs.live.demo.central_processes``); these
helpers give the inventory keys and start a lone Alertmanager for API-level tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flobs.live.demo import alertmanager_process
from flobs.live.processes import Supervisor
from flobs.live.webhook import Delivery, WebhookSink
from flobs.model import Fleet
from tests.conftest import require_tool


def start_alertmanager(sup: Supervisor, fleet: Fleet, out: Path, data: Path) -> str:
    """The generated central/alertmanager.yml in a real Alertmanager; its base URL."""
    proc = alertmanager_process(fleet, out, data, require_tool("alertmanager"))
    sup.start(proc.name, proc.argv, role=proc.role, url=proc.url)
    sup.wait_ready(proc.name, proc.ready)
    return proc.url


def alertmanager_inventory(
    sink: WebhookSink, port: int, *, vmalert_port: int | None = None, **alerts: Any
) -> dict[str, Any]:
    """central.* keys for a test fleet: a webhook to ``sink``, fast grouping, short ``for:``."""
    am: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "receivers": [{"name": "sink", "webhook": [{"url": sink.url}]}],
        "group_wait": "1s",
        "group_interval": "2s",
        "repeat_interval": "1h",
    }
    if vmalert_port is not None:
        am["vmalert_listen"] = f"127.0.0.1:{vmalert_port}"
    return {"alertmanager": am, "alerts": alerts}


def delivered(got: list[Delivery]) -> list[tuple[str, str, str]]:
    """Distinct (status, alertname, host) over every delivery, sorted."""
    return sorted({d.key() for d in got})
