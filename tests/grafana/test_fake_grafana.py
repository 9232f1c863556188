"""The fake follows grafana-api.md: the rules the push tests rely on are pinned here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.grafana.fake_grafana import FakeGrafana, Fault
from tests.grafana.grafana_cases import OTHER_ORG_TOKEN, TOKEN, VIEWER_TOKEN, dashboard


@pytest.fixture
def api(fake_grafana: FakeGrafana) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake_grafana.url, headers=headers, timeout=5) as client:
        yield client


def save(api: httpx.Client, model: dict[str, Any], **body: Any) -> httpx.Response:
    return api.post("/api/dashboards/db", json={"dashboard": model, **body})


def test_health_needs_no_auth_and_reports_a_failing_database(fake_grafana: FakeGrafana) -> None:
    assert httpx.get(f"{fake_grafana.url}/api/health").json()["database"] == "ok"
    fake_grafana.database_failing = True
    answer = httpx.get(f"{fake_grafana.url}/api/health")
    assert answer.status_code == 503 and answer.json()["database"] == "failing"


def test_every_accepted_save_bumps_the_version(api: httpx.Client) -> None:
    assert save(api, dashboard("a")).json()["version"] == 1
    assert save(api, dashboard("a") | {"version": 1}).json()["version"] == 2
    assert save(api, dashboard("a") | {"version": 2}).json()["version"] == 3


def test_stale_version_is_412_or_409_on_the_newest_grafana(
    fake_grafana: FakeGrafana, api: httpx.Client
) -> None:
    save(api, dashboard("a"))
    stale = save(api, dashboard("a") | {"version": 7})
    assert stale.status_code == 412 and stale.json()["status"] == "version-mismatch"
    fake_grafana.conflict_status = 409
    current = save(api, dashboard("a") | {"version": 1})
    assert current.status_code == 409  # id/version stripped: no optimistic locking
    assert save(api, dashboard("a"), overwrite=True).status_code == 200


def test_save_rules(fake_grafana: FakeGrafana, api: httpx.Client) -> None:
    missing = save(api, dashboard("a"), folderUid="nope")
    assert (missing.status_code, missing.json()["message"]) == (400, "folder not found")
    assert save(api, dashboard("a", title="")).json()["status"] == "empty-name"
    assert save(api, dashboard("a" * 41)).status_code == 400
    assert save(api, dashboard("a"), message="x" * 501).status_code == 400
    assert save(api, dashboard("a") | {"id": 999}).status_code == 404
    generated = save(api, dashboard("") | {"uid": None}).json()["uid"]
    assert generated
    fake_grafana.add_dashboard(dashboard("p"), provisioned=True)
    refused = save(api, dashboard("p"), overwrite=True)
    assert (refused.status_code, refused.json()["message"]) == (
        400,
        "Cannot save provisioned dashboard",
    )
    meta = api.get("/api/dashboards/uid/p").json()["meta"]
    assert meta["provisioned"] is True and meta["canSave"] is False


def test_auth_and_org_rules(fake_grafana: FakeGrafana) -> None:
    url = f"{fake_grafana.url}/api/folders"
    assert httpx.get(url).status_code == 401
    other = httpx.get(
        url, headers={"Authorization": f"Bearer {OTHER_ORG_TOKEN}", "X-Grafana-Org-Id": "1"}
    )
    assert other.status_code == 401
    assert "does not belong to the requested organization" in other.json()["message"]
    api_key = httpx.get(url, auth=("api_key", TOKEN))
    assert api_key.status_code == 200
    viewer = httpx.post(
        f"{fake_grafana.url}/api/dashboards/db",
        headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
        json={"dashboard": dashboard("a")},
    )
    assert viewer.status_code == 403


def test_orgs_are_separate(fake_grafana: FakeGrafana, api: httpx.Client) -> None:
    save(api, dashboard("a"))
    other = httpx.get(
        f"{fake_grafana.url}/api/dashboards/uid/a",
        headers={"Authorization": f"Bearer {OTHER_ORG_TOKEN}"},
    )
    assert other.status_code == 404


def test_folders(api: httpx.Client) -> None:
    assert api.post("/api/folders", json={"uid": "p", "title": "P"}).status_code == 200
    assert api.post("/api/folders", json={"uid": "p", "title": "Q"}).status_code == 409
    assert api.post("/api/folders", json={"uid": "q", "title": "P"}).status_code == 409
    assert api.post("/api/folders", json={"uid": "c", "title": "C", "parentUid": "p"}).json()[
        "parents"
    ] == [{"uid": "p", "title": "P"}]
    assert api.get("/api/folders", params={"parentUid": "p"}).json()[0]["uid"] == "c"
    parent = "c"
    for depth in range(6):
        answer = api.post(
            "/api/folders", json={"uid": f"d{depth}", "title": "D", "parentUid": parent}
        )
        assert answer.status_code == 200
        parent = f"d{depth}"
    too_deep = api.post("/api/folders", json={"uid": "deep", "title": "D", "parentUid": parent})
    assert too_deep.status_code == 400
    assert api.get("/api/folders/none").json() == {
        "status": "not-found",
        "message": "folder not found",
    }
    assert api.put("/api/folders/p", json={"title": "P2"}).status_code == 400
    assert api.put("/api/folders/p", json={"title": "P2", "version": 9}).status_code == 412


def test_datasources(fake_grafana: FakeGrafana, api: httpx.Client) -> None:
    body = {
        "uid": "ds",
        "name": "DS",
        "type": "loki",
        "url": "http://loki",
        "secureJsonData": {"password": "pw"},
    }
    assert api.post("/api/datasources", json=body).json()["message"] == "Datasource added"
    read = api.get("/api/datasources/uid/ds").json()
    assert read["secureJsonFields"] == {"password": True} and "pw" not in str(read)
    assert api.post("/api/datasources", json=body).status_code == 409
    assert (
        api.post(
            "/api/datasources", json=body | {"uid": "x", "name": "Y", "url": "no url"}
        ).status_code
        == 400
    )
    assert api.put("/api/datasources/uid/ds", json=body | {"version": 5}).status_code == 409
    fake_grafana.add_datasource({"uid": "ro", "name": "RO", "type": "loki"}, read_only=True)
    refused = api.put("/api/datasources/uid/ro", json={"name": "RO"})
    assert refused.json()["message"] == "Cannot update read-only data source"


def test_fault_injection_is_per_route_and_in_order(
    fake_grafana: FakeGrafana, api: httpx.Client
) -> None:
    fake_grafana.fault(
        "GET",
        "/api/folders",
        Fault(status=503, headers={"Retry-After": "2"}),
        Fault(status=502, body="<html>bad</html>", content_type="text/html"),
    )
    first = api.get("/api/folders")
    assert (first.status_code, first.headers["Retry-After"]) == (503, "2")
    second = api.get("/api/folders")
    assert (second.status_code, second.text) == (502, "<html>bad</html>")
    assert api.get("/api/folders").status_code == 200
    assert api.get("/api/search").status_code == 200  # other routes untouched
    fake_grafana.fault("POST", "/api/dashboards/db", Fault(status=500, land=True))
    assert save(api, dashboard("a")).status_code == 500
    assert fake_grafana.dashboard("a")["dashboard"]["version"] == 1  # it landed
    fake_grafana.fault("GET", "/api/folders", Fault(reset=True))
    with pytest.raises(httpx.TransportError):
        api.get("/api/folders")
    assert [r.status for r in fake_grafana.requests("GET", "/api/folders")] == [503, 502, 200, None]
