"""The Prometheus API client against a real, hostile server on loopback.

Whatever the server does — drip, flood, lie about its size, send garbage, HTML or
JSON of the wrong shape — the client ends with a RemoteError that names the URL (or
QueryFailed when the server refused the one expression), within its deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flobs.errors import RemoteError, UsageError
from flobs.live.prometheus_api import PrometheusAPI, QueryFailed, Sample
from tests.live.hostile_server import (
    Handler,
    HostileServer,
    claims_700_mb,
    drip_body,
    drip_headers,
    endless_vector,
    hostile_server,
)

Q = "/api/v1/query"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile_server() as s:
        yield s


def _fails(api: PrometheusAPI, limit: float) -> tuple[RemoteError, float]:
    started = time.monotonic()
    with pytest.raises(RemoteError) as info:
        api.query("up")
    return info.value, time.monotonic() - started


def test_a_dripping_body_is_cut_off_at_the_total_deadline(server: HostileServer) -> None:
    server.routes[Q] = drip_body()
    err, took = _fails(PrometheusAPI(server.url, timeout=1.0), 1.0)
    assert took < 2.5, took
    assert err.message == f"Prometheus at {server.url}{Q}: no complete answer within 1s"


def test_dripping_headers_are_cut_off_at_the_total_deadline(server: HostileServer) -> None:
    server.routes[Q] = drip_headers
    err, took = _fails(PrometheusAPI(server.url, timeout=1.0), 1.0)
    assert took < 2.5, took
    assert err.message == f"Prometheus at {server.url}{Q}: no complete answer within 1s"


def test_an_endless_answer_stops_at_the_size_cap(server: HostileServer) -> None:
    server.routes[Q] = endless_vector
    api = PrometheusAPI(server.url, max_bytes=4 * 1024 * 1024)
    err, _took = _fails(api, 10)
    assert err.message == (
        f"Prometheus at {server.url}{Q}: the answer is larger than the 4 MiB limit"
    )
    # The client hung up: the server got out the cap plus what socket buffers hold.
    time.sleep(0.2)
    assert server.sent < 4 * 1024 * 1024 + 16 * 1024 * 1024


def test_an_endless_answer_stops_at_the_series_cap(server: HostileServer) -> None:
    """Parsed series cost far more memory than their bytes: they are capped too."""
    server.routes[Q] = endless_vector
    err, _took = _fails(PrometheusAPI(server.url, max_series=1000), 10)
    assert err.message == f"Prometheus at {server.url}{Q}: the answer has more than 1000 series"


def test_a_700_mb_answer_is_refused_from_its_content_length(server: HostileServer) -> None:
    server.routes[Q] = claims_700_mb
    err, took = _fails(PrometheusAPI(server.url), 5)
    assert took < 2.0
    assert err.message == (
        f"Prometheus at {server.url}{Q}: the answer is 734003200 bytes, more than the 64 MiB limit"
    )


def _vector(*values: Any) -> dict[str, Any]:
    result = [{"metric": {"host": f"h{i}"}, "value": [1, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


NOT_PROMETHEUS = "not a Prometheus API answer"
MALFORMED = [
    (
        "html-502",
        502,
        "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
        "text/html",
        "answered HTTP 502 with an HTML page (502 Bad Gateway nginx), not a Prometheus API answer",
    ),
    (
        "html-login-200",
        200,
        "<html><form>Sign in</form></html>",
        "text/html",
        "answered HTTP 200 with an HTML page (Sign in), not a Prometheus API answer",
    ),
    (
        "text-404",
        404,
        "404 page not found",
        "text/plain",
        "answered HTTP 404 with a non-JSON body (404 page not found), not a Prometheus API answer",
    ),
    (
        "empty-500",
        500,
        "",
        "text/plain",
        "answered HTTP 500 with an empty body, not a Prometheus API answer",
    ),
    (
        "garbage",
        200,
        b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
        "application/json",
        f"{NOT_PROMETHEUS}: not UTF-8 (invalid start byte)",
    ),
    (
        "not-utf8",
        200,
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"h":"\xff"}}]}}',
        "application/json",
        f"{NOT_PROMETHEUS}: not UTF-8 (invalid start byte)",
    ),
    (
        "a-list",
        200,
        "[1, 2]",
        "application/json",
        f"{NOT_PROMETHEUS}: the answer is not a JSON object",
    ),
    (
        "no-status",
        200,
        {"data": {}},
        None,
        f"{NOT_PROMETHEUS}: status is null, not success or error",
    ),
    (
        "data-list",
        200,
        {"status": "success", "data": []},
        None,
        f"{NOT_PROMETHEUS}: data is not an object",
    ),
    (
        "result-dict",
        200,
        {"status": "success", "data": {"resultType": "vector", "result": {}}},
        None,
        f"{NOT_PROMETHEUS}: data.result is not a list",
    ),
    (
        "unknown-type",
        200,
        {"status": "success", "data": {"resultType": "table", "result": []}},
        None,
        f"{NOT_PROMETHEUS}: data.resultType is table",
    ),
    (
        "text-value",
        200,
        _vector("1", "many"),
        None,
        f"{NOT_PROMETHEUS}: data.result[1]: the sample value many is not a number",
    ),
    (
        "number-value",
        200,
        _vector(3),
        None,
        f"{NOT_PROMETHEUS}: data.result[0]: the sample value 3 is not a number",
    ),
    (
        "item-not-object",
        200,
        {"status": "success", "data": {"resultType": "vector", "result": [1, 2, 3]}},
        None,
        f"{NOT_PROMETHEUS}: data.result has an item that is not a series",
    ),
    (
        "label-not-string",
        200,
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "1"]}]},
        },
        None,
        f"{NOT_PROMETHEUS}: data.result[0].metric is not a map of label names to strings",
    ),
    (
        "short-point",
        200,
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]},
        },
        None,
        f'{NOT_PROMETHEUS}: data.result[0]: a sample is not [timestamp, "value"]',
    ),
    (
        "scalar-wrong",
        200,
        {"status": "success", "data": {"resultType": "scalar", "result": "1"}},
        None,
        f'{NOT_PROMETHEUS}: a scalar result is not [timestamp, "value"]',
    ),
    (
        "truncated",
        200,
        '{"status":"success","data":{"resultType":"vector","result":[{"metric":{}',
        "application/json",
        f"{NOT_PROMETHEUS}: data.result holds invalid JSON",
    ),
    (
        "deep",
        200,
        "[" * 100_000 + "]" * 100_000,
        "application/json",
        f"{NOT_PROMETHEUS}: invalid JSON (RecursionError)",
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [m[1:] for m in MALFORMED],
    ids=[m[0] for m in MALFORMED],
)
def test_malformed_answers_are_located_remote_errors(
    server: HostileServer, status: int, body: Any, content_type: str | None, message: str
) -> None:
    server.routes[Q] = lambda h: h.answer(status, body, content_type)
    err, _took = _fails(PrometheusAPI(server.url), 5)
    assert err.message == f"Prometheus at {server.url}{Q}: {message}"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            "bad_data: parse error",
        ),
        (422, {"status": "error", "errorType": 5, "error": ["x"]}, '5: ["x"]'),
        (200, {"status": "error"}, "error: "),
    ],
)
def test_error_answers_are_query_failures(
    server: HostileServer, status: int, body: Any, error: str
) -> None:
    server.routes[Q] = lambda h: h.answer(status, body)
    with pytest.raises(QueryFailed) as info:
        PrometheusAPI(server.url).query("up")
    assert str(info.value) == error


def test_a_refusal_names_the_url_and_the_variables(server: HostileServer) -> None:
    server.routes[Q] = lambda h: h.answer(401, {"status": "error", "error": "unauthorized"})
    err, _took = _fails(PrometheusAPI(server.url), 5)
    assert err.message == f"Prometheus at {server.url}{Q}: refused the request (HTTP 401)"
    assert (
        err.hint
        == "set FLOBS_PROMETHEUS_TOKEN, or FLOBS_PROMETHEUS_USERNAME and FLOBS_PROMETHEUS_PASSWORD"
    )


def test_valid_answers_stream_in_any_chunking(server: HostileServer) -> None:
    body = json.dumps(
        {
            "status": "success",
            "isPartial": False,
            "data": {
                "resultType": "vector",
                "result": _vector("1", "+Inf", "NaN")["data"]["result"],
            },
            "stats": {"seriesFetched": "3"},
        }
    ).encode()

    def chunked(h: Handler) -> None:
        h.head()
        for i in range(0, len(body), 7):
            h.raw(body[i : i + 7])

    server.routes[Q] = chunked
    samples = PrometheusAPI(server.url).query("up")
    assert [s.labels["host"] for s in samples] == ["h0", "h1", "h2"]
    assert samples[0] == Sample({"host": "h0"}, 1.0) and samples[1].value == float("inf")
    server.routes[Q] = lambda h: h.answer(
        200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "4.5"]}}
    )
    assert PrometheusAPI(server.url).query("1") == [Sample({}, 4.5)]


def test_an_unreachable_server_is_a_remote_error() -> None:
    with hostile_server() as s:
        url = s.url
    with pytest.raises(RemoteError) as info:
        PrometheusAPI(url, timeout=2).query("up")
    assert info.value.message.startswith(f"cannot reach Prometheus at {url}: ConnectError")


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://prom.example:99999",
        "prom.example:9090",
        "http:///nohost",
        "http://a b",
    ],
)
def test_malformed_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError) as info:
        PrometheusAPI.from_env(url, {})
    assert info.value.message.startswith("--prometheus ")
