"""``verify --deep``: does the centre hold the same numbers the hosts computed?

For each host (or a ``--sample N`` of them), every flobs recording series
(``host:*``, ``microvm:*``) the host's local Prometheus holds is read there and at the
centre with the same evaluation time ``t``. Federation and remote_write both keep the
samples' own timestamps, so both sides answer with the same sample: the values must be
equal, within :data:`REL_TOLERANCE` (VictoriaMetrics stores values as decimal
mantissa + exponent, so the last digits of a float64 may differ). ``t`` lies two
rounds (scrape + evaluation + federation) in the past, so the sample had time to
cross. The centre's series carry the host's external labels on top of its own; those
are taken off before the series are matched, and so are the ``job``/``instance`` the
federate scrape adds to series that had none on the host.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flobs.errors import RemoteError
from flobs.live.federation import federation_clients
from flobs.live.prometheus_api import PrometheusAPI, QueryFailed
from flobs.model import Fleet, Host
from flobs.promtime import seconds

REL_TOLERANCE = 1e-9
ABS_TOLERANCE = 1e-12  # for values at or near zero
FLOBS_SERIES = '{__name__=~"host:.+|microvm:.+"}'
MAX_MISMATCHES = 20  # per host: enough to see the pattern


@dataclass(frozen=True)
class Mismatch:
    series: str  # the local series, as PromQL
    local: float | None  # the host's value at ``timestamp`` (None: no such sample there)
    central: float | None  # the centre's (None: the series is missing at the centre)
    timestamp: float | None  # of the centre's newest sample at the check time

    def describe(self, host: str) -> str:
        if self.central is None:
            return f"{host}: {self.series} is missing at the centre (host: {self.local})"
        return (
            f"{host}: {self.series} at {self.timestamp:.3f}: centre {self.central!r}, "
            f"host {'no sample' if self.local is None else repr(self.local)}"
        )


@dataclass
class DeepHost:
    host: str
    at: float  # evaluation time, unix seconds
    series: int = 0  # local series compared
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.error and self.series > 0


def _series_text(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def _equal(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


def settle_seconds(fleet: Fleet, host: Host) -> float:
    """How far back ``t`` lies: two rounds of everything a sample crosses."""
    v = host.vars
    p = fleet.central.prometheus
    one_round = seconds(v.scrape_interval) + seconds(v.evaluation_interval)
    one_round += seconds(p.scrape_interval) if p.mode == "federation" else 5.0
    return 2 * one_round


Raw = dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]


def _raw_samples(
    api: PrometheusAPI, selector: str, window: float, at: float, drop: set[str]
) -> Raw:
    """series (labels minus ``drop``) → [(timestamp, value)] of the raw samples in the window."""
    body = api.get_json(
        "/api/v1/query", {"query": f"{selector}[{max(1, int(window))}s]", "time": f"{at:.3f}"}
    )
    data = body.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("resultType") != "matrix"
        or not isinstance(result, list)
    ):
        raise RemoteError(f"{api.url}: a range selector did not answer with a matrix")
    out: Raw = {}
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
            continue
        metric = {str(k): str(v) for k, v in item["metric"].items()}
        if metric.get("job") == "federate":
            # The series had no job/instance on the host: the federate scrape added its own.
            metric = {k: v for k, v in metric.items() if k not in ("job", "instance")}
        labels = {k: v for k, v in metric.items() if k not in drop}
        points = []
        for point in item.get("values") or []:
            try:
                points.append((round(float(point[0]), 3), float(point[1])))
            except (TypeError, ValueError, IndexError):
                continue
        out[tuple(sorted(labels.items()))] = points
    return out


def compare_host(
    fleet: Fleet,
    host: Host,
    central: PrometheusAPI,
    local: PrometheusAPI,
    *,
    now: float | None = None,
) -> DeepHost:
    """The centre's newest sample of each series at ``t`` against the host's sample with
    the same timestamp (the centre may have skipped samples between scrapes: that is
    not a mismatch, a different value for the same instant is)."""
    settle = settle_seconds(fleet, host)
    at = round((time.time() if now is None else now) - settle, 3)
    result = DeepHost(host.name, at)
    external = {"cluster", "host", *dict(host.labels)}
    selector = f'{{__name__=~"host:.+|microvm:.+",host="{_escape(host.name)}"}}'
    try:
        theirs = _raw_samples(central, selector, 2 * settle, at, external)
        mine = _raw_samples(local, FLOBS_SERIES, 4 * settle, at, set())
    except (QueryFailed, RemoteError) as err:
        result.error = str(err)
        return result
    result.series = len(mine)
    for key in sorted(mine):
        series = _series_text(dict(key))
        local_at = dict(mine[key])
        newest = theirs.get(key)
        if not newest:
            newest_local = mine[key][-1][1] if mine[key] else None
            result.mismatches.append(Mismatch(series, newest_local, None, None))
        else:
            ts, value = newest[-1]
            if ts not in local_at or not _equal(local_at[ts], value):
                result.mismatches.append(Mismatch(series, local_at.get(ts), value, ts))
        if len(result.mismatches) >= MAX_MISMATCHES:
            break
    return result


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def deep_check(
    fleet: Fleet,
    central: PrometheusAPI,
    *,
    sample: int | None = None,
    local_api: Callable[[Host], PrometheusAPI] | None = None,
    rng: random.Random | None = None,
) -> list[DeepHost]:
    """Compare every host (or ``sample`` random hosts) with the centre."""
    hosts = list(fleet.hosts)
    if sample is not None and sample < len(hosts):
        hosts = sorted(
            (
                rng or random.Random()  # noqa: S311 - which hosts to sample, not a secret
            ).sample(hosts, sample),
            key=lambda h: h.name,
        )
    # As the centre's federate job reaches them: https, its CA and user when set.
    connect = local_api or federation_clients(fleet)
    out = []
    for host in hosts:
        with connect(host) as local:
            out.append(compare_host(fleet, host, central, local))
    return out
