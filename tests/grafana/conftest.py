"""Fixtures for the Grafana push tests: a running fake Grafana and small dashboards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_grafana import FakeGrafana

TOKEN = "glsa_flobsTEST_0123456789abcdefSECRET"
OTHER_ORG_TOKEN = "glsa_otherORG_9876543210fedcbaSECRET"
VIEWER_TOKEN = "glsa_viewerONLY_5555555555SECRET"


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    """A fake Grafana on 127.0.0.1: org 1 with an Editor token, org 2 with another."""
    fake = FakeGrafana()
    fake.add_token(TOKEN, org_id=1, role="Editor")
    fake.add_token(OTHER_ORG_TOKEN, org_id=2, role="Editor")
    fake.add_token(VIEWER_TOKEN, org_id=1, role="Viewer")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def dashboard(uid: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """A small Grafana dashboard model, like the generator writes."""
    return {
        "uid": uid,
        "title": title if title is not None else f"Flintlock {uid}",
        "tags": ["flintlock", "flobs"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "panels": [
            {
                "id": 1,
                "type": "timeseries",
                "title": "microVMs",
                "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
                "targets": [{"expr": 'sum(microvm:up{host=~"$host"})', "refId": "A"}],
            }
        ],
        **extra,
    }


@pytest.fixture
def make_out(tmp_path: Path) -> Callable[..., Path]:
    """Write dashboards (and optionally a datasources file) into a fresh OUT tree."""

    def make(*dashboards: dict[str, Any], datasources: str | None = None) -> Path:
        out = tmp_path / "out"
        boards = out / "grafana" / "dashboards"
        boards.mkdir(parents=True, exist_ok=True)
        for old in boards.glob("*.json"):
            old.unlink()
        for model in dashboards:
            (boards / f"{model['uid']}.json").write_text(
                json.dumps(model, indent=2) + "\n", encoding="utf-8"
            )
        if datasources is not None:
            ds = out / "grafana" / "provisioning" / "datasources"
            ds.mkdir(parents=True, exist_ok=True)
            (ds / "flobs.yaml").write_text(datasources, encoding="utf-8")
        return out

    return make
