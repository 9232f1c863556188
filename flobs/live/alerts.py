"""Alerts as the centre sees them: firing or pending, about what, and where they went.

Prometheus (and anything with its alerts API) answers ``/api/v1/alerts`` with each
active alert's labels and state; an alert expression returning data only says the
alert is *pending or firing*, so the API is asked first. A store without that API
(VictoriaMetrics single-node without ``-vmalert.proxyURL``) still holds the ``ALERTS``
series its ruler writes (``alertstate="pending"|"firing"``), so that is the fallback
when the API is missing or empty (VictoriaMetrics answers it with an empty list).

When Prometheus has Alertmanagers (``/api/v1/alertmanagers``), each firing alert is
looked up in every one of them (``GET /api/v2/alerts``): "delivered to" names the
Alertmanagers that hold it. Prometheus adds its external labels to what it sends, so
an alert matches when its labels are a subset of the Alertmanager's copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from flobs import httpio
from flobs.errors import RemoteError
from flobs.live.prometheus_api import PrometheusAPI, QueryFailed

AlertState = Literal["firing", "pending"]
_STATES: dict[str, AlertState] = {"firing": "firing", "pending": "pending"}
# Labels that are bookkeeping, not what the alert is about.
NOT_IDENTIFYING = frozenset({"alertname", "alertstate", "__name__"})
MAX_ALERTMANAGER_BYTES = 16 * 1024 * 1024
ALERTMANAGER_TIMEOUT = 10.0


@dataclass(frozen=True)
class ActiveAlert:
    name: str
    state: AlertState
    labels: dict[str, str]  # identifying labels: host, grpc_method, severity …
    active_since: str = ""  # RFC 3339, from the alerts API ("" from ALERTS)
    delivered_to: tuple[str, ...] = ()  # Alertmanager URLs holding it

    @property
    def host(self) -> str | None:
        return self.labels.get("host")

    def describe(self) -> str:
        labels = ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.labels.items()
        )
        return f"{self.name}{{{labels}}}"


@dataclass
class AlertsSeen:
    source: Literal["alerts API", "ALERTS series", "none"]
    alerts: list[ActiveAlert] = field(default_factory=list)
    alertmanagers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _identifying(labels: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in sorted(labels.items()) if k not in NOT_IDENTIFYING}


def _from_api(body: Mapping[str, Any]) -> list[ActiveAlert] | None:
    data = body.get("data")
    items = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            continue
        state = _STATES.get(str(item.get("state")))
        if state is None:
            continue  # "inactive" is not active; anything else is not an answer we know
        labels = item["labels"]
        out.append(
            ActiveAlert(
                str(labels.get("alertname", "?")),
                state,
                _identifying(labels),
                str(item.get("activeAt") or ""),
            )
        )
    return out


def _from_series(api: PrometheusAPI) -> list[ActiveAlert]:
    out = []
    for s in api.query('ALERTS{alertstate=~"firing|pending"}'):
        state = _STATES.get(s.labels.get("alertstate", ""))
        if state is not None:
            out.append(ActiveAlert(s.labels.get("alertname", "?"), state, _identifying(s.labels)))
    return out


def _alertmanagers(api: PrometheusAPI) -> list[str]:
    try:
        body = api.get_json("/api/v1/alertmanagers")
    except (QueryFailed, RemoteError):
        return []
    data = body.get("data")
    active = data.get("activeAlertmanagers") if isinstance(data, dict) else None
    urls = [str(am.get("url")) for am in active or [] if isinstance(am, dict) and am.get("url")]
    return sorted(set(urls))


def _alertmanager_alerts(url: str, timeout: float) -> list[dict[str, str]]:
    """Label sets of the alerts an Alertmanager holds (its v2 API; a v1 URL is moved up)."""
    v2 = url.replace("/api/v1/alerts", "/api/v2/alerts")
    answer = httpio.get(f"{v2}?active=true", timeout=timeout, max_bytes=MAX_ALERTMANAGER_BYTES)
    if answer.status != 200:
        raise ValueError(f"HTTP {answer.status}")
    doc = json.loads(answer.content)
    if not isinstance(doc, list):
        raise ValueError("not a list of alerts")
    return [
        {str(k): str(v) for k, v in a["labels"].items()}
        for a in doc
        if isinstance(a, dict) and isinstance(a.get("labels"), dict)
    ]


def alerts_seen(
    api: PrometheusAPI, *, alertmanager_timeout: float = ALERTMANAGER_TIMEOUT
) -> AlertsSeen:
    """The active alerts behind ``api`` and the Alertmanagers holding the firing ones
    (each asked within ``alertmanager_timeout`` seconds: verify's --timeout)."""
    seen = AlertsSeen("none")
    try:
        found = _from_api(api.get_json("/api/v1/alerts"))
    except (QueryFailed, RemoteError):
        found = None
    if found:
        seen.source, seen.alerts = "alerts API", found
    else:
        # VictoriaMetrics answers the alerts API with an empty list when no vmalert is
        # proxied, while its ruler's ALERTS series may hold the truth.
        try:
            series = _from_series(api)
        except QueryFailed as err:
            series = []
            if found is None:
                seen.notes.append(f"cannot read alerts: no alerts API, and ALERTS failed: {err}")
                return seen
        seen.alerts = series
        seen.source = "alerts API" if found is not None and not series else "ALERTS series"
    seen.alerts.sort(key=lambda a: (a.state != "firing", a.name, sorted(a.labels.items())))
    seen.alertmanagers = _alertmanagers(api)
    held: dict[str, list[dict[str, str]]] = {}
    for url in seen.alertmanagers:
        try:
            held[url] = _alertmanager_alerts(url, alertmanager_timeout)
        # The URLs are the centre's word: one httpx cannot even parse is a note too.
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, RemoteError) as err:
            seen.notes.append(f"cannot read alerts from Alertmanager {url}: {err}")
    for i, alert in enumerate(seen.alerts):
        if alert.state != "firing":
            continue
        wanted = {"alertname": alert.name, **alert.labels}
        where = tuple(
            url
            for url, alerts in held.items()
            if any(all(a.get(k) == v for k, v in wanted.items()) for a in alerts)
        )
        seen.alerts[i] = ActiveAlert(
            alert.name, alert.state, alert.labels, alert.active_since, where
        )
    return seen
