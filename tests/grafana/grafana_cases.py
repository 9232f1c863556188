"""Shared test data for the Grafana push tests: credentials and dashboard models."""

from __future__ import annotations

from typing import Any

TOKEN = "glsa_flobsTEST_0123456789abcdefSECRET"
OTHER_ORG_TOKEN = "glsa_otherORG_9876543210fedcbaSECRET"
VIEWER_TOKEN = "glsa_viewerONLY_5555555555SECRET"


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
