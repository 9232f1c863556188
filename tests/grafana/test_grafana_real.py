"""Opt-in: push to a real Grafana when FLOBS_GRAFANA_URL and FLOBS_GRAFANA_TOKEN are set.

The push runs in a subprocess (the real CLI), so the loopback-only guard of the test
process does not stand in the way of a Grafana on another host. It writes one folder
(``flobs-e2e``) and one dashboard (``flobs-e2e-probe``) and leaves them there, so
re-runs exercise the unchanged path too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.grafana.grafana_cases import dashboard
from tests.helpers import run_flobs

URL = os.environ.get("FLOBS_GRAFANA_URL", "")
TOKEN = os.environ.get("FLOBS_GRAFANA_TOKEN", "")

pytestmark = pytest.mark.skipif(
    not (URL and TOKEN),
    reason="real Grafana test: set FLOBS_GRAFANA_URL and FLOBS_GRAFANA_TOKEN to run it",
)


def test_push_to_a_real_grafana_is_idempotent(make_out: Callable[..., Path]) -> None:
    out = make_out(dashboard("flobs-e2e-probe", title="flobs e2e probe"))
    env = {"GRAFANA_TOKEN": TOKEN}
    args = [
        "push-dashboards",
        str(out),
        "--grafana-url",
        URL,
        "--folder-uid",
        "flobs-e2e",
        "--folder-title",
        "flobs e2e",
        "--format",
        "json",
    ]
    first = run_flobs(*args, env=env)
    assert first.code == 0, first.stderr
    second = run_flobs(*args, env=env)
    assert second.code == 0, second.stderr
    doc = json.loads(second.stdout)
    [item] = [i for i in doc["items"] if i["kind"] == "dashboard"]
    assert item["action"] == "unchanged", "a real Grafana must read back what flobs pushed"
    for result in (first, second):
        assert TOKEN not in result.stdout + result.stderr
