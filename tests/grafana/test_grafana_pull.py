"""`flobs pull-dashboards`: UI edits come home as files, and a round trip is stable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from flobs import yamlio
from flobs.generate import generate
from flobs.grafana.client import Credentials, GrafanaClient
from flobs.grafana.push import PushOptions, folder_chain, push
from tests.grafana.fake_grafana import FakeGrafana
from tests.grafana.grafana_cases import TOKEN
from tests.helpers import run_flobs
from tests.test_extensions import EXAMPLE


@pytest.fixture
def pushed_tree(fake_grafana: FakeGrafana, tmp_path: Path) -> tuple[Path, Path]:
    """(inventory copy, OUT) of examples/extensions, pushed to the fake Grafana."""
    shutil.copytree(EXAMPLE.parent, tmp_path / "inv")
    inv = tmp_path / "inv" / "inventory.yaml"
    out = tmp_path / "out"
    generate(inv, out)
    with GrafanaClient(fake_grafana.url, Credentials(token=TOKEN)) as client:
        options = PushOptions(folders=folder_chain("flobs-flintlock", "Flintlock"))
        assert push(client, out, options).ok
    fake_grafana.log.clear()
    return inv, out


def _panel(model: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in model["panels"] if p.get("title") == title)


def _ui_edit(fake: FakeGrafana) -> None:
    """What a colleague does in the UI: Grafana drops flobs' marker on a UI save."""

    def fleet(d: dict[str, Any]) -> None:
        d.pop("flobsPush")
        _panel(d, "Unreachable hosts")["title"] = "Hosts we cannot reach"
        d["panels"].remove(_panel(d, "MicroVMs"))
        steps = _panel(d, "gRPC server error ratio by method")["fieldConfig"]["defaults"]
        steps["thresholds"]["steps"][-1]["value"] = 0.2

    def host(d: dict[str, Any]) -> None:
        d.pop("flobsPush")
        target = next(p for p in d["panels"] if p.get("targets"))["targets"][0]
        target["expr"] = "sum(up)"

    def storage(d: dict[str, Any]) -> None:
        d.pop("flobsPush")
        d["title"] = "Lab / Storage agent (v2)"

    fake.edit_dashboard("flobs-fleet", fleet)
    fake.edit_dashboard("flobs-host", host)
    fake.edit_dashboard("lab-storage", storage)


def test_pull_shows_edits_and_exits_1_without_write(
    fake_grafana: FakeGrafana, pushed_tree: tuple[Path, Path]
) -> None:
    inv, out = pushed_tree
    _ui_edit(fake_grafana)
    env = {"GRAFANA_TOKEN": TOKEN}
    result = run_flobs(
        "pull-dashboards", out, "--grafana-url", fake_grafana.url, "-i", inv, env=env
    )
    assert result.code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [ln for ln in lines if not ln.startswith((" ", "#"))][:4] == [
        "edited    flobs-fleet  Flintlock / Fleet overview",
        "edited    flobs-host  Flintlock / Host detail",
        "unchanged flobs-microvm  Flintlock / MicroVM detail",
        "edited    lab-storage  Lab / Storage agent",
    ]
    assert result.stderr.splitlines()[-1] == "1 unchanged, 3 edited"
    assert fake_grafana.writes() == []  # pulling never writes to Grafana


def test_pull_write_brings_edits_home_and_round_trips(
    fake_grafana: FakeGrafana, pushed_tree: tuple[Path, Path], tmp_path: Path
) -> None:
    inv, out = pushed_tree
    _ui_edit(fake_grafana)
    patch = tmp_path / "patch.yaml"
    env = {"GRAFANA_TOKEN": TOKEN}
    args = ("pull-dashboards", out, "--grafana-url", fake_grafana.url, "-i", inv)
    result = run_flobs(*args, "--write", "--patch-out", patch, "--format", "json", env=env)
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    # Keyed by the titles flobs ships ("Hosts down"), not the overridden one.
    assert report["overrides_patch"] == {
        "extensions": {
            "overrides": {
                "panels": {
                    "flobs-fleet": {
                        "Hosts down": {"title": "Hosts we cannot reach"},
                        "MicroVMs": {"disable": True},
                        "gRPC server error ratio by method": {"threshold": 0.2},
                    },
                }
            }
        }
    }
    by_uid = {i["uid"]: i for i in report["items"]}
    assert by_uid["flobs-fleet"]["not_expressible"] == []
    assert by_uid["flobs-host"]["not_expressible"] == [
        "panel 'flintlockd up': queries or options changed"  # the query edited in _ui_edit
    ]
    # The user's dashboard went back over its source; flobs-host's query edit became an
    # extra dashboard under a new uid.
    storage = json.loads((inv.parent / "dashboards" / "storage.json").read_text())
    assert storage["title"] == "Lab / Storage agent (v2)" and "flobsPush" not in storage
    extra = json.loads((inv.parent / "dashboards" / "flobs-host-edited.json").read_text())
    assert (extra["uid"], extra["title"]) == (
        "flobs-host-edited",
        "Flintlock / Host detail (edited)",
    )

    # Merge the patch into the inventory (as a user would), regenerate: Grafana and OUT
    # now agree on everything overrides can say.
    doc = yamlio.load(inv.read_text())
    doc["extensions"]["overrides"]["panels"]["flobs-fleet"] = {
        **{"Highest load per CPU": {"disable": True}},
        **yamlio.load(patch.read_text())["extensions"]["overrides"]["panels"]["flobs-fleet"],
    }
    inv.write_text(yamlio.dump(doc))
    generate(inv, out)
    again = run_flobs(*args, "--format", "json", env=env)
    items = {i["uid"]: i for i in json.loads(again.stdout)["items"]}
    states = {u: i["state"] for u, i in items.items()}
    assert states["flobs-fleet"] == "layout"  # only positions differ now
    assert states["lab-storage"] == "unchanged"
    assert states["flobs-host-edited"] == "missing"  # new extra dashboard, not pushed yet
