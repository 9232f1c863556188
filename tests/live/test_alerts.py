"""Alerts read from odd or partial answers (the real servers are in tests/e2e/test_alerts.py)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from flobs.live.alerts import alerts_seen
from flobs.live.prometheus_api import PrometheusAPI
from tests.conftest import EXAMPLE_INVENTORY
from tests.helpers import run_flobs
from tests.live.hostile_server import drip_headers, hostile_server


def _api(routes: dict[str, tuple[int, Any]]) -> PrometheusAPI:
    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.path
        if key == "/api/v1/query":
            key += "?" + request.url.params.get("query", "")
        status, body = routes.get(key, (404, "404 page not found"))
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    return PrometheusAPI("http://prom.test", transport=httpx.MockTransport(handler))


ALERTS_QUERY = '/api/v1/query?ALERTS{alertstate=~"firing|pending"}'
EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}


def test_no_alerts_api_and_no_alerts_is_an_empty_answer_from_the_series() -> None:
    seen = alerts_seen(_api({ALERTS_QUERY: (200, EMPTY_VECTOR)}))
    assert (seen.source, seen.alerts, seen.notes) == ("ALERTS series", [], [])


def test_an_empty_alerts_api_on_prometheus_is_the_alerts_api() -> None:
    api = _api(
        {
            "/api/v1/alerts": (200, {"status": "success", "data": {"alerts": []}}),
            ALERTS_QUERY: (200, EMPTY_VECTOR),
        }
    )
    assert alerts_seen(api).source == "alerts API"


def test_odd_items_are_skipped_inactive_ones_too() -> None:
    body = {
        "status": "success",
        "data": {
            "alerts": [
                "nonsense",
                {"labels": "x", "state": "firing"},
                {"labels": {"alertname": "A", "host": "h"}, "state": "inactive"},
                {"labels": {"alertname": "B", "host": "h"}, "state": "weird"},
                {"labels": {"alertname": "C", "host": "h", "code": 5}, "state": "pending"},
            ]
        },
    }
    seen = alerts_seen(_api({"/api/v1/alerts": (200, body)}))
    assert [(a.name, a.state, a.labels) for a in seen.alerts] == [
        ("C", "pending", {"code": "5", "host": "h"})
    ]
    assert seen.alerts[0].describe() == 'C{code="5", host="h"}'


def test_alerts_series_refused_is_a_note_not_a_crash() -> None:
    refused = {"status": "error", "errorType": "bad_data", "error": "no ALERTS here"}
    seen = alerts_seen(_api({ALERTS_QUERY: (400, refused)}))
    assert seen.alerts == []
    assert seen.notes == [
        "cannot read alerts: no alerts API, and ALERTS failed: bad_data: no ALERTS here"
    ]


def test_text_names_state_labels_and_alertmanager() -> None:
    from flobs.commands.verify import render_alerts
    from flobs.live.alerts import ActiveAlert, AlertsSeen
    from flobs.live.verify import VerifyReport

    report = VerifyReport("http://p", "federation", 15.0)
    report.alerts = AlertsSeen(
        "alerts API",
        [
            ActiveAlert(
                "FlintlockdGrpcErrors",
                "firing",
                {"grpc_method": "CreateMicroVM", "host": "h-1"},
                "2026-01-01T00:00:00Z",
                ("http://am:9093/api/v2/alerts",),
            ),
            ActiveAlert("HostDown", "firing", {"host": "h-3"}),
            ActiveAlert("FlintlockdRestarting", "pending", {"host": "h-2"}),
        ],
        ["http://am:9093/api/v2/alerts"],
    )
    assert "".join(render_alerts(report)) == (
        "alerts: 2 firing, 1 pending (from the alerts API)\n"
        '  firing   FlintlockdGrpcErrors{grpc_method="CreateMicroVM", host="h-1"} since '
        "2026-01-01T00:00:00Z -> http://am:9093/api/v2/alerts\n"
        '  firing   HostDown{host="h-3"} -> in no Alertmanager yet\n'
        '  pending  FlintlockdRestarting{host="h-2"}\n'
        "alertmanagers: http://am:9093/api/v2/alerts\n"
    )


FIRING = {
    "status": "success",
    "data": {"alerts": [{"labels": {"alertname": "HostDown", "host": "h"}, "state": "firing"}]},
}


def _with_alertmanager(url: str) -> PrometheusAPI:
    listed = {"status": "success", "data": {"activeAlertmanagers": [{"url": url}]}}
    return _api({"/api/v1/alerts": (200, FIRING), "/api/v1/alertmanagers": (200, listed)})


def test_an_alertmanager_url_httpx_cannot_parse_is_a_note_not_a_crash() -> None:
    # The list is the centre's word; httpx raises InvalidURL (not an HTTPError) for it.
    seen = alerts_seen(_with_alertmanager("http://am:99999x/api/v2/alerts"))
    assert seen.notes == [
        "cannot read alerts from Alertmanager http://am:99999x/api/v2/alerts: "
        "Invalid port: '99999x'"
    ]
    assert seen.alerts[0].delivered_to == ()


def test_an_alertmanager_is_waited_for_as_long_as_asked() -> None:
    with hostile_server() as am:
        am.default = drip_headers
        url = f"{am.url}/api/v2/alerts"
        started = time.monotonic()
        seen = alerts_seen(_with_alertmanager(url), alertmanager_timeout=1.0)
        assert time.monotonic() - started < 6  # 1 s, plus a loaded CI machine
    assert seen.notes == [
        f"cannot read alerts from Alertmanager {url}: no complete answer within 1s"
    ]


def test_verify_timeout_is_the_alertmanagers_timeout() -> None:
    """docs/live.md: --timeout bounds every answer from a store or an Alertmanager."""
    with hostile_server() as centre:
        am = f"{centre.url}/am/api/v2/alerts"
        listed = {"status": "success", "data": {"activeAlertmanagers": [{"url": am}]}}
        empty = {"status": "success", "data": {"resultType": "vector", "result": []}}
        centre.routes["/api/v1/alerts"] = lambda h: h.answer(200, FIRING)
        centre.routes["/api/v1/alertmanagers"] = lambda h: h.answer(200, listed)
        centre.routes["/api/v1/query"] = lambda h: h.answer(200, empty)
        centre.routes["/am/api/v2/alerts"] = drip_headers
        started = time.monotonic()
        r = run_flobs(
            "verify", "-i", EXAMPLE_INVENTORY, "--prometheus", centre.url, "--timeout", "1"
        )
        assert time.monotonic() - started < 30
    assert r.code == 1, r.stderr  # no host is present at this centre
    assert f"note: cannot read alerts from Alertmanager {am}: no complete answer within 1s" in (
        r.stdout
    )
