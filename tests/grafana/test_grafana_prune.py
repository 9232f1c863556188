"""`push-dashboards --prune`: owned stale dashboards go, foreign ones stay (request log)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flobs.grafana.push import MARKER, Action
from tests.grafana.fake_grafana import FakeGrafana, Fault
from tests.grafana.grafana_cases import dashboard
from tests.grafana.test_grafana_push import actions, pushed, run
from tests.helpers import run_flobs


def _setup(fake: FakeGrafana, make_out: Callable[..., Path]) -> Path:
    """Grafana after flobs pushed a, b, stale1, stale2, plus a colleague's dashboards:
    one in flobs' folder, one tagged `flobs` elsewhere. OUT now only has a and b."""
    pushed(fake, make_out, *(dashboard(u) for u in ("a", "b", "stale1", "stale2")))
    fake.add_dashboard(dashboard("theirs", "A colleague's"), "flobs-flintlock")
    fake.add_folder("team", "Team")
    fake.add_dashboard(dashboard("tagged", "Tagged by hand"), "team")
    fake.log.clear()
    return make_out(dashboard("a"), dashboard("b"))


def test_prune_deletes_owned_stale_and_never_foreign(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = _setup(fake_grafana, make_out)
    result = run(fake_grafana, out, prune=True)
    assert result.ok
    assert actions(result) == {
        "a": Action.UNCHANGED,
        "b": Action.UNCHANGED,
        "stale1": Action.DELETE,
        "stale2": Action.DELETE,
    }
    deletes = [f"{r.method} {r.path}" for r in fake_grafana.writes()]
    assert deletes == [
        "DELETE /api/dashboards/uid/stale1",
        "DELETE /api/dashboards/uid/stale2",
    ]
    searches = [r.query for r in fake_grafana.requests("GET", "/api/search")]
    assert [q.get("folderUIDs") or q.get("tag") for q in searches] == [
        ["flobs-flintlock"],
        ["flobs"],
    ]
    assert {uid for _org, uid in fake_grafana.dashboards} == {"a", "b", "theirs", "tagged"}
    # Second run: nothing left to do, not one writing request.
    fake_grafana.log.clear()
    again = run(fake_grafana, out, prune=True)
    assert actions(again) == {"a": Action.UNCHANGED, "b": Action.UNCHANGED}
    assert fake_grafana.writes() == []


def test_dry_run_lists_deletions_and_writes_nothing(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = _setup(fake_grafana, make_out)
    result = run(fake_grafana, out, prune=True, dry_run=True)
    assert [(i.uid, i.action, i.detail) for i in result.items if i.action is Action.DELETE] == [
        ("stale1", Action.DELETE, "no longer generated"),
        ("stale2", Action.DELETE, "no longer generated"),
    ]
    assert fake_grafana.writes() == []


def test_owned_but_edited_is_a_conflict_until_forced_per_uid(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = _setup(fake_grafana, make_out)
    fake_grafana.edit_dashboard("stale1", lambda d: d.update(title="Edited in the UI"))
    result = run(fake_grafana, out, prune=True)
    assert not result.ok
    assert actions(result)["stale1"] is Action.CONFLICT
    assert [r.path for r in fake_grafana.writes()] == ["/api/dashboards/uid/stale2"]
    fake_grafana.log.clear()
    forced = run(fake_grafana, out, prune=True, force_uids=frozenset({"stale1"}))
    assert actions(forced)["stale1"] is Action.DELETE
    assert [r.path for r in fake_grafana.writes()] == ["/api/dashboards/uid/stale1"]


def test_marker_of_another_folder_is_foreign(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = _setup(fake_grafana, make_out)
    # Another flobs tree pushed into `team` and tagged it `flobs`: not ours to delete.
    other = fake_grafana.dashboard("stale2")["dashboard"]
    other[MARKER] = {**other[MARKER], "folder": "team"}
    fake_grafana.add_dashboard(other, "team")
    result = run(fake_grafana, out, prune=True)
    assert actions(result) == {
        "a": Action.UNCHANGED,
        "b": Action.UNCHANGED,
        "stale1": Action.DELETE,
    }


def test_lost_delete_answer_is_confirmed_by_rereading(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = _setup(fake_grafana, make_out)
    fake_grafana.fault("DELETE", "/api/dashboards/uid/stale1", Fault(reset=True, land=True))
    fake_grafana.fault("DELETE", "/api/dashboards/uid/stale2", Fault(status=500))
    result = run(fake_grafana, out, prune=True)
    by_uid = {i.uid: i for i in result.of_kind("dashboard")}
    assert by_uid["stale1"].action is Action.DELETE
    assert "confirmed by re-reading" in by_uid["stale1"].detail
    assert by_uid["stale2"].action is Action.FAILED  # a 500 on DELETE: outcome unknown, still there
    assert ("stale2" in {uid for _o, uid in fake_grafana.dashboards}) is True


def test_cli_prune_dry_run_then_prune(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    from tests.grafana.grafana_cases import TOKEN

    out = _setup(fake_grafana, make_out)
    env = {"GRAFANA_TOKEN": TOKEN}
    args = ("push-dashboards", out, "--grafana-url", fake_grafana.url, "--prune")
    plan = run_flobs(*args, "--dry-run", env=env)
    assert plan.code == 0, plan.stderr
    assert "would delete" in plan.stdout
    assert plan.stderr.splitlines()[-1] == (
        "dry run, nothing written: dashboards: 2 unchanged, 2 delete; folders: 1 unchanged"
    )
    done = run_flobs(*args, env=env)
    assert done.code == 0
    assert done.stderr.splitlines()[-1] == (
        "dashboards: 2 unchanged, 2 delete; folders: 1 unchanged"
    )


def test_cli_refuses_prune_with_no_dashboards(tmp_path: Path) -> None:
    (tmp_path / "out" / "grafana" / "dashboards").mkdir(parents=True)
    result = run_flobs(
        "push-dashboards", tmp_path / "out", "--grafana-url", "http://127.0.0.1:9", "--prune"
    )
    assert result.code == 2
    assert "would delete every dashboard flobs pushed" in result.stderr


def test_fake_folder_delete_takes_its_dashboards(fake_grafana: FakeGrafana) -> None:
    from flobs.grafana.client import Credentials, GrafanaClient
    from tests.grafana.grafana_cases import TOKEN

    fake_grafana.add_folder("team", "Team")
    fake_grafana.add_folder("sub", "Sub", parent="team")
    fake_grafana.add_dashboard(dashboard("x"), "sub")
    with GrafanaClient(fake_grafana.url, Credentials(token=TOKEN)) as client:
        answer = client.delete("/api/folders/team")
        assert answer["message"] == "Folder deleted"
        assert client.search_dashboards() == []
    assert fake_grafana.folders == {}


def test_provisioned_dashboard_is_left_to_its_file(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = _setup(fake_grafana, make_out)
    model = fake_grafana.dashboard("stale1")["dashboard"]
    fake_grafana.add_dashboard(model, "flobs-flintlock", provisioned=True)
    result = run(fake_grafana, out, prune=True)
    assert actions(result) == {
        "a": Action.UNCHANGED,
        "b": Action.UNCHANGED,
        "stale2": Action.DELETE,
    }
    assert [r.path for r in fake_grafana.writes()] == ["/api/dashboards/uid/stale2"]


def test_fake_delete_routes_answer_like_grafana(fake_grafana: FakeGrafana) -> None:
    from flobs.grafana.client import Credentials, GrafanaClient, GrafanaHTTPError
    from tests.grafana.grafana_cases import TOKEN

    fake_grafana.add_dashboard(dashboard("p"), provisioned=True)
    fake_grafana.add_dashboard(dashboard("q", tags=["flobs", "x"]))
    with GrafanaClient(fake_grafana.url, Credentials(token=TOKEN)) as client:
        assert [h["uid"] for h in client.search_dashboards(tag="x")] == ["q"]
        assert client.delete("/api/dashboards/uid/q") == {
            "title": "Flintlock q",
            "message": "Dashboard Flintlock q deleted",
            "id": 102,  # p got 101, q 102
        }
        for path, status in (("/api/dashboards/uid/p", 400), ("/api/dashboards/uid/q", 404)):
            with pytest.raises(GrafanaHTTPError) as info:
                client.delete(path)
            assert info.value.status == status
