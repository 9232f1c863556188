"""The push core against the fake Grafana, asserting on its request log.

The client's sleep is injected, so retries and backoffs cost no wall time here and the
waits the client asked for can be asserted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flobs.errors import InputError, RemoteError, UsageError
from flobs.grafana.client import Credentials, GrafanaClient, RetryPolicy
from flobs.grafana.push import (
    MARKER,
    Action,
    PushOptions,
    PushResult,
    fingerprint,
    folder_chain,
    normalize,
    push,
)
from tests.grafana.fake_grafana import FakeGrafana, Fault, html_502
from tests.grafana.grafana_cases import TOKEN, dashboard

DB = "/api/dashboards/db"


def run(
    fake: FakeGrafana,
    out: Path,
    *,
    token: str = TOKEN,
    folder: str = "flobs-flintlock",
    title: str | None = "Flintlock",
    sleeps: list[float] | None = None,
    timeout: float = 5.0,
    **options: Any,
) -> PushResult:
    waits = sleeps if sleeps is not None else []
    with GrafanaClient(
        fake.url,
        Credentials(token=token),
        sleep=waits.append,
        timeout=timeout,
        retry=RetryPolicy(attempts=4, budget=30),
    ) as client:
        return push(client, out, PushOptions(folders=folder_chain(folder, title), **options))


def actions(result: PushResult, kind: str = "dashboard") -> dict[str, Action]:
    return {i.uid: i.action for i in result.of_kind(kind)}


def pushed(fake: FakeGrafana, out_maker: Callable[..., Path], *models: dict[str, Any]) -> Path:
    """OUT with ``models``, already pushed once (the state CI finds on the next merge)."""
    out = out_maker(*models)
    assert run(fake, out).ok
    fake.log.clear()
    return out


def test_first_push_creates_folder_then_dashboards(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"), dashboard("microvms"))
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.CREATE, "microvms": Action.CREATE}
    assert actions(result, "folder") == {"flobs-flintlock": Action.CREATE}
    calls = fake_grafana.calls()
    assert calls[:3] == ["GET /api/health", "GET /api/folders/flobs-flintlock", "POST /api/folders"]
    posts = fake_grafana.requests("POST", DB)
    assert len(posts) == 2
    for post in posts:
        assert post.body["overwrite"] is False
        assert post.body["folderUid"] == "flobs-flintlock"
        assert post.body["dashboard"]["id"] is None
        assert "version" not in post.body["dashboard"]
    assert fake_grafana.dashboard("hosts")["folderUid"] == "flobs-flintlock"


def test_unchanged_push_makes_zero_writes(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"), dashboard("microvms"))
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.UNCHANGED, "microvms": Action.UNCHANGED}
    assert fake_grafana.writes() == []
    assert fake_grafana.dashboard("hosts")["dashboard"]["version"] == 1


def test_grafana_added_keys_and_integral_floats_do_not_count_as_changes(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts", graphTooltip=1.0))

    def grafana_rewrites(model: dict[str, Any]) -> None:
        model["graphTooltip"] = 1  # Go writes float64 1.0 as 1
        model["weekStart"] = ""  # a default a server may add
        model["iteration"] = 1700000000000

    # Not a save (no version bump): what the stored JSON may look like on read.
    fake_grafana.dashboards[(1, "hosts")]["dashboard"].update(
        {"graphTooltip": 1, "weekStart": "", "iteration": 1700000000000}
    )
    assert run(fake_grafana, out).ok
    assert fake_grafana.writes() == []
    probe = dashboard("hosts", graphTooltip=1.0)
    grafana_rewrites(probe)
    assert fingerprint(probe) == fingerprint(dashboard("hosts", graphTooltip=1.0))


def test_local_edit_updates_with_the_stored_version(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    pushed(fake_grafana, make_out, dashboard("hosts"), dashboard("microvms"))
    out = make_out(dashboard("hosts", description="now with a description"), dashboard("microvms"))
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.UPDATE, "microvms": Action.UNCHANGED}
    [post] = fake_grafana.requests("POST", DB)
    assert post.body["overwrite"] is False
    assert post.body["dashboard"]["version"] == 1
    assert post.body["dashboard"]["uid"] == "hosts"
    stored = fake_grafana.dashboard("hosts")["dashboard"]
    assert stored["version"] == 2
    assert stored["description"] == "now with a description"
    assert stored[MARKER]["sha256"] == fingerprint(stored)
    [item] = [i for i in result.items if i.uid == "hosts"]
    assert any('+ "description"' in line for line in item.diff)


def test_remote_edit_is_a_conflict_and_not_overwritten(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    pushed(fake_grafana, make_out, dashboard("hosts"))
    fake_grafana.edit_dashboard("hosts", lambda d: d.update(title="Colleague's version"))
    out = make_out(dashboard("hosts", description="local change"))
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.CONFLICT}
    assert not result.ok
    assert fake_grafana.writes() == []
    assert fake_grafana.dashboard("hosts")["dashboard"]["title"] == "Colleague's version"
    [item] = result.of_kind("dashboard")
    assert "changed in Grafana since flobs pushed it" in item.detail
    assert any("Colleague's version" in line for line in item.diff)


def test_remote_edit_even_when_local_is_unchanged_is_a_conflict(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"))
    fake_grafana.edit_dashboard("hosts", lambda d: d["panels"].append({"id": 2, "type": "text"}))
    assert actions(run(fake_grafana, out)) == {"hosts": Action.CONFLICT}
    assert fake_grafana.writes() == []


@pytest.mark.parametrize("conflict_status", [412, 409])
def test_save_racing_between_get_and_post_is_a_conflict(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], conflict_status: int
) -> None:
    fake_grafana.conflict_status = conflict_status
    pushed(fake_grafana, make_out, dashboard("hosts"))
    out = make_out(dashboard("hosts", description="local change"))
    # A colleague saves after our GET, just before our POST.
    fake_grafana.before(
        "POST", DB, lambda f: f.edit_dashboard("hosts", lambda d: d.update(title="Saved meanwhile"))
    )
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.CONFLICT}
    posts = fake_grafana.requests("POST", DB)
    assert [p.status for p in posts] == [conflict_status]
    assert posts[0].body["overwrite"] is False
    assert fake_grafana.dashboard("hosts")["dashboard"]["title"] == "Saved meanwhile"
    [item] = result.of_kind("dashboard")
    assert f"({conflict_status}:" in item.detail
    assert "--force" in item.detail


def test_newest_grafana_409_update_is_verified_then_overwritten(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    """Grafana answering 409 to every plain update: re-read, still ours → overwrite."""
    fake_grafana.conflict_status = 409
    pushed(fake_grafana, make_out, dashboard("hosts"))
    out = make_out(dashboard("hosts", description="local change"))
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.UPDATE}
    assert [(p.body["overwrite"], p.status) for p in fake_grafana.requests("POST", DB)] == [
        (False, 409),
        (True, 200),
    ]
    assert fake_grafana.calls().count("GET /api/dashboards/uid/hosts") == 2
    assert fake_grafana.dashboard("hosts")["dashboard"]["description"] == "local change"


@pytest.mark.parametrize("conflict_status", [412, 409])
def test_force_overwrites_a_remote_edit(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], conflict_status: int
) -> None:
    fake_grafana.conflict_status = conflict_status
    pushed(fake_grafana, make_out, dashboard("hosts"))
    fake_grafana.edit_dashboard("hosts", lambda d: d.update(title="Colleague's version"))
    out = make_out(dashboard("hosts"))
    result = run(fake_grafana, out, force=True)
    assert actions(result) == {"hosts": Action.UPDATE}
    [post] = fake_grafana.requests("POST", DB)
    assert post.body["overwrite"] is True
    assert fake_grafana.dashboard("hosts")["dashboard"]["title"] == "Flintlock hosts"
    assert "forced" in result.of_kind("dashboard")[0].detail


def test_dashboard_not_pushed_by_flobs_is_a_conflict(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_folder("flobs-flintlock", "Flintlock")
    fake_grafana.add_dashboard(dashboard("hosts", title="Hand-made"), "flobs-flintlock")
    result = run(fake_grafana, make_out(dashboard("hosts")))
    assert actions(result) == {"hosts": Action.CONFLICT}
    assert "not pushed by flobs" in result.of_kind("dashboard")[0].detail
    assert fake_grafana.writes() == []


def test_dashboard_in_another_folder_is_moved(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"))
    fake_grafana.add_folder("elsewhere", "Elsewhere")
    fake_grafana.dashboards[(1, "hosts")]["folderUid"] = "elsewhere"
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.UPDATE}
    assert "move from folder 'elsewhere'" in result.of_kind("dashboard")[0].detail
    assert fake_grafana.dashboard("hosts")["folderUid"] == "flobs-flintlock"


def test_nested_folders_are_created_parents_first(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_folder("platform", "Platform")
    result = run(
        fake_grafana,
        make_out(dashboard("hosts")),
        folder="platform/obs/flintlock",
        title="Platform/Observability/Flintlock",
    )
    assert actions(result, "folder") == {
        "platform": Action.UNCHANGED,
        "obs": Action.CREATE,
        "flintlock": Action.CREATE,
    }
    created = [p.body for p in fake_grafana.requests("POST", "/api/folders")]
    assert created == [
        {"uid": "obs", "title": "Observability", "parentUid": "platform"},
        {"uid": "flintlock", "title": "Flintlock", "parentUid": "obs"},
    ]
    assert fake_grafana.dashboard("hosts")["folderUid"] == "flintlock"


def test_folder_create_race_409_counts_once_reread_finds_it(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    # Another CI job creates the folder between our GET and our POST.
    fake_grafana.before(
        "POST", "/api/folders", lambda f: f.add_folder("flobs-flintlock", "Flintlock")
    )
    result = run(fake_grafana, make_out(dashboard("hosts")))
    assert result.ok
    assert actions(result) == {"hosts": Action.CREATE}
    assert [r.status for r in fake_grafana.requests("POST", "/api/folders")] == [409]
    assert fake_grafana.calls().count("GET /api/folders/flobs-flintlock") == 2


def test_folder_409_from_a_title_clash_is_an_error(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_folder("someone-elses", "Flintlock")
    with pytest.raises(RemoteError, match="same name already exists"):
        run(fake_grafana, make_out(dashboard("hosts")))
    assert fake_grafana.requests("POST", DB) == []


@pytest.mark.parametrize("status", [500, 403])
def test_transient_error_right_after_folder_creation_is_retried(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], status: int
) -> None:
    fake_grafana.fault("POST", DB, Fault(status=status, body={"message": "transient"}))
    sleeps: list[float] = []
    result = run(fake_grafana, make_out(dashboard("hosts")), sleeps=sleeps)
    assert actions(result) == {"hosts": Action.CREATE}
    assert [r.status for r in fake_grafana.requests("POST", DB)] == [status, 200]
    if status == 500:
        # A 500 may hide a save that landed: a GET proved it had not before re-sending.
        calls = fake_grafana.calls()
        first_post = calls.index(f"POST {DB}")
        assert calls[first_post + 1] == "GET /api/dashboards/uid/hosts"
    else:
        assert sleeps, "the 403 retry waits a moment"


def test_403_on_save_without_a_fresh_folder_fails_without_retry(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    pushed(fake_grafana, make_out, dashboard("hosts"))
    out = make_out(dashboard("hosts", description="x"))
    fake_grafana.fault(
        "POST", DB, Fault(status=403, body={"message": "Access denied to save dashboard"})
    )
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.FAILED}
    assert "Access denied to save dashboard" in result.of_kind("dashboard")[0].detail
    assert len(fake_grafana.requests("POST", DB)) == 1


def test_provisioned_dashboard_is_skipped_with_a_warning(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_folder("flobs-flintlock", "Flintlock")
    fake_grafana.add_dashboard(
        dashboard("hosts", title="From a file"), "flobs-flintlock", provisioned=True
    )
    result = run(fake_grafana, make_out(dashboard("hosts"), dashboard("microvms")))
    assert actions(result) == {"hosts": Action.SKIPPED, "microvms": Action.CREATE}
    assert result.ok
    assert any("provisioned" in w and "hosts" in w for w in result.warnings)
    assert [p.body["dashboard"]["uid"] for p in fake_grafana.requests("POST", DB)] == ["microvms"]


def test_429_with_retry_after_is_honoured(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.fault(
        "POST", DB, Fault(status=429, body={"message": "slow down"}, headers={"Retry-After": "7"})
    )
    sleeps: list[float] = []
    result = run(fake_grafana, make_out(dashboard("hosts")), sleeps=sleeps)
    assert actions(result) == {"hosts": Action.CREATE}
    posts = fake_grafana.requests("POST", DB)
    assert [p.status for p in posts] == [429, 200]
    assert posts[0].raw == posts[1].raw, "every retry sends the same body"
    assert 7.0 in sleeps


def test_retry_after_beyond_the_budget_gives_up(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.fault("GET", "/api/health", Fault(status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(RemoteError, match="retry after 3600s"):
        run(fake_grafana, make_out(dashboard("hosts")))
    assert fake_grafana.calls() == ["GET /api/health"]


def test_503_503_200_is_retried_with_growing_waits(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.fault("POST", DB, Fault(status=503), Fault(status=503))
    sleeps: list[float] = []
    result = run(fake_grafana, make_out(dashboard("hosts")), sleeps=sleeps)
    assert actions(result) == {"hosts": Action.CREATE}
    posts = fake_grafana.requests("POST", DB)
    assert [p.status for p in posts] == [503, 503, 200]
    assert len({p.raw for p in posts}) == 1
    # Equal jitter: retry n waits between half and all of base * 2**(n-1).
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_persistent_503_gives_up_after_bounded_attempts(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.fault("GET", "/api/health", *[Fault(status=503)] * 10)
    with pytest.raises(RemoteError, match="giving up after 4 attempts"):
        run(fake_grafana, make_out(dashboard("hosts")))
    assert fake_grafana.calls() == ["GET /api/health"] * 4


def test_500_on_a_post_that_landed_is_not_sent_twice(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    pushed(fake_grafana, make_out, dashboard("hosts"))
    out = make_out(dashboard("hosts", description="new"))
    fake_grafana.fault("POST", DB, Fault(status=500, land=True))
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.UPDATE}
    assert len(fake_grafana.requests("POST", DB)) == 1
    assert fake_grafana.calls()[-1] == "GET /api/dashboards/uid/hosts"
    assert fake_grafana.dashboard("hosts")["dashboard"]["version"] == 2
    assert result.of_kind("dashboard")[0].version == 2


def test_lost_answer_to_a_post_that_did_not_land_is_resent(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"))
    out = make_out(dashboard("hosts", description="new"))
    fake_grafana.fault("POST", DB, Fault(reset=True))
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.UPDATE}
    posts = fake_grafana.requests("POST", DB)
    assert [p.status for p in posts] == [None, 200]
    assert posts[0].raw == posts[1].raw
    assert fake_grafana.dashboard("hosts")["dashboard"]["version"] == 2


def test_timeout_mid_response_on_a_post_that_landed(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    fake_grafana.add_folder("flobs-flintlock", "Flintlock")
    fake_grafana.fault("POST", DB, Fault(stall=2.0, land=True))
    result = run(fake_grafana, make_out(dashboard("hosts")), timeout=0.5)
    assert actions(result) == {"hosts": Action.CREATE}
    assert len(fake_grafana.requests("POST", DB)) == 1
    assert "confirmed by re-reading" in result.of_kind("dashboard")[0].detail


def test_timeout_mid_response_on_a_get_is_retried(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"))
    fake_grafana.fault("GET", "/api/dashboards/uid/hosts", Fault(stall=2.0))
    result = run(fake_grafana, out, timeout=0.5)
    assert actions(result) == {"hosts": Action.UNCHANGED}
    assert fake_grafana.calls().count("GET /api/dashboards/uid/hosts") == 2
    assert fake_grafana.writes() == []


def test_html_502_on_a_get_is_retried(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"))
    fake_grafana.fault("GET", "/api/dashboards/uid/hosts", html_502())
    assert actions(run(fake_grafana, out)) == {"hosts": Action.UNCHANGED}
    assert [r.status for r in fake_grafana.requests("GET", "/api/dashboards/uid/hosts")] == [
        502,
        200,
    ]


def test_connection_reset_on_a_get_is_retried(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"))
    fake_grafana.fault("GET", "/api/folders/flobs-flintlock", Fault(reset=True))
    assert run(fake_grafana, out).ok
    assert fake_grafana.calls().count("GET /api/folders/flobs-flintlock") == 2


def test_401_is_not_retried(fake_grafana: FakeGrafana, make_out: Callable[..., Path]) -> None:
    with pytest.raises(RemoteError, match="Invalid API key") as info:
        run(fake_grafana, make_out(dashboard("hosts")), token="glsa_wrong")
    assert info.value.exit_code == 3
    assert fake_grafana.calls() == ["GET /api/health", "GET /api/folders/flobs-flintlock"]


def test_dry_run_reads_but_never_writes(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    pushed(fake_grafana, make_out, dashboard("hosts"), dashboard("microvms"))
    fake_grafana.edit_dashboard("microvms", lambda d: d.update(title="Edited"))
    out = make_out(dashboard("hosts", description="new"), dashboard("microvms"), dashboard("logs"))
    result = run(fake_grafana, out, dry_run=True)
    assert actions(result) == {
        "hosts": Action.UPDATE,
        "microvms": Action.CONFLICT,
        "logs": Action.CREATE,
    }
    assert fake_grafana.writes() == []
    [hosts] = [i for i in result.items if i.uid == "hosts"]
    assert hosts.diff[:2] == ("--- grafana", "+++ local")


def test_dry_run_with_a_missing_folder_plans_everything_as_create(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    result = run(fake_grafana, make_out(dashboard("hosts")), dry_run=True)
    assert actions(result, "folder") == {"flobs-flintlock": Action.CREATE}
    assert actions(result) == {"hosts": Action.CREATE}
    assert fake_grafana.writes() == []


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (dashboard("bad uid!"), "must match"),
        (dashboard("x" * 41), "must match"),
        (dashboard("ok", title=""), "title must be a non-empty string"),
        (dashboard("ok", title="   "), "title must be a non-empty string"),
        ({"title": "no uid"} | {"uid": None}, "must match"),
    ],
)
def test_bad_uid_or_empty_title_is_rejected_before_any_request(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], model: dict[str, Any], message: str
) -> None:
    out = make_out(dashboard("fine"))
    (out / "grafana" / "dashboards" / "zz-bad.json").write_text(
        __import__("json").dumps(model), encoding="utf-8"
    )
    with pytest.raises(InputError) as info:
        run(fake_grafana, out)
    assert any(message in p.message for p in info.value.problems)
    assert fake_grafana.log == []


def test_duplicate_uids_are_rejected_before_any_request(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = make_out(dashboard("hosts"))
    (out / "grafana" / "dashboards" / "copy.json").write_text(
        __import__("json").dumps(dashboard("hosts")), encoding="utf-8"
    )
    with pytest.raises(InputError):
        run(fake_grafana, out)
    assert fake_grafana.log == []


@pytest.mark.parametrize("folder", ["bad uid", "a/" * 8 + "b", "a/a", ""])
def test_bad_folder_uids_are_usage_errors(folder: str) -> None:
    with pytest.raises(UsageError):
        folder_chain(folder, "T")


def test_normalize_ignores_what_grafana_owns() -> None:
    local = dashboard("hosts")
    remote = {**local, "id": 7, "version": 12, "iteration": 1, MARKER: {"sha256": "x"}}
    assert normalize(remote) == normalize(local)


def test_concurrent_push_of_many_dashboards(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    models = [dashboard(f"d{i:02d}") for i in range(24)]
    seen: list[tuple[int, int]] = []
    result = run(
        fake_grafana,
        make_out(*models),
        concurrency=6,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert [i.uid for i in result.of_kind("dashboard")] == [m["uid"] for m in models]
    assert result.count(Action.CREATE) == 25  # 24 dashboards and the folder
    assert seen[0] == (0, 24) and seen[-1] == (24, 24)
    assert len(fake_grafana.requests("POST", DB)) == 24


@pytest.mark.parametrize("land", [True, False])
def test_lost_answer_to_a_folder_create(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], land: bool
) -> None:
    fake_grafana.fault("POST", "/api/folders", Fault(status=502, land=land))
    result = run(fake_grafana, make_out(dashboard("hosts")))
    assert actions(result, "folder") == {"flobs-flintlock": Action.CREATE}
    assert actions(result) == {"hosts": Action.CREATE}
    posts = fake_grafana.requests("POST", "/api/folders")
    assert [p.status for p in posts] == ([502] if land else [502, 200])


def test_dry_run_with_a_missing_folder_still_reads_each_dashboard(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"))
    result = run(fake_grafana, out, folder="new-home", title="New home", dry_run=True)
    assert actions(result, "folder") == {"new-home": Action.CREATE}
    assert actions(result) == {"hosts": Action.UPDATE}
    assert "move from folder 'flobs-flintlock'" in result.of_kind("dashboard")[0].detail
    assert fake_grafana.writes() == []


@pytest.mark.parametrize("conflict_status", [412, 409])
def test_a_lost_save_that_lands_late_is_not_reported_as_a_conflict(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], conflict_status: int
) -> None:
    fake_grafana.conflict_status = conflict_status
    pushed(fake_grafana, make_out, dashboard("hosts"))
    out = make_out(dashboard("hosts", description="new"))
    fake_grafana.fault("POST", DB, Fault(reset=True))
    first_body: list[dict[str, Any]] = []

    def lands_late(fake: FakeGrafana) -> None:
        # The first save, stuck in a proxy, reaches Grafana just before the re-send.
        body = first_body[0]
        entry = fake.dashboards[(1, "hosts")]
        fake.dashboards[(1, "hosts")] = {
            **entry,
            "dashboard": {
                **body["dashboard"],
                "id": entry["dashboard"]["id"],
                "version": entry["dashboard"]["version"] + 1,
            },
        }

    fake_grafana.before("POST", DB, lambda f: first_body.append(f.log[-1].body))
    fake_grafana.before("POST", DB, lands_late)
    result = run(fake_grafana, out)
    assert actions(result) == {"hosts": Action.UPDATE}
    assert "confirmed by re-reading" in result.of_kind("dashboard")[0].detail
    assert [p.status for p in fake_grafana.requests("POST", DB)] == [None, conflict_status]
    assert fake_grafana.dashboard("hosts")["dashboard"]["version"] == 2


def test_latency_beyond_the_timeout_on_a_read_is_retried(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path]
) -> None:
    out = pushed(fake_grafana, make_out, dashboard("hosts"))
    fake_grafana.fault("GET", "/api/folders/flobs-flintlock", Fault(delay=1.5), Fault(delay=0.1))
    result = run(fake_grafana, out, timeout=0.5)
    assert actions(result) == {"hosts": Action.UNCHANGED}
    assert fake_grafana.calls().count("GET /api/folders/flobs-flintlock") == 2


def test_token_never_in_debug_logs_even_on_errors(
    fake_grafana: FakeGrafana, make_out: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Even with every library logging at DEBUG (httpx, httpcore), the token stays out."""
    caplog.set_level(logging.DEBUG)
    out = make_out(dashboard("hosts"))
    fake_grafana.fault("POST", DB, Fault(status=500, land=True))
    fake_grafana.fault("GET", "/api/health", Fault(status=503))
    assert run(fake_grafana, out).ok
    with pytest.raises(RemoteError):
        run(fake_grafana, out, token=TOKEN + "-revoked")
    assert "HTTP Request" in caplog.text  # httpx did log the requests
    assert TOKEN not in caplog.text
