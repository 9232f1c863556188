"""Fixtures for the Grafana push tests: a running fake Grafana and an OUT tree maker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.grafana.fake_grafana import FakeGrafana
from tests.grafana.grafana_cases import OTHER_ORG_TOKEN, TOKEN, VIEWER_TOKEN


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    """A fake Grafana on 127.0.0.1: org 1 with Editor and Viewer tokens, org 2 with one."""
    fake = FakeGrafana()
    fake.add_token(TOKEN, org_id=1, role="Editor")
    fake.add_token(OTHER_ORG_TOKEN, org_id=2, role="Editor")
    fake.add_token(VIEWER_TOKEN, org_id=1, role="Viewer")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


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
            path = boards / f"{model['uid']}.json".replace("/", "_")
            path.write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
        if datasources is not None:
            ds = out / "grafana" / "provisioning" / "datasources"
            ds.mkdir(parents=True, exist_ok=True)
            (ds / "flobs.yaml").write_text(datasources, encoding="utf-8")
        return out

    return make
