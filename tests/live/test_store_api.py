"""StoreAPI, the one bounded JSON client under every log/trace store client (verify's
Loki/Tempo/VictoriaLogs/Jaeger backends and the demo's VictoriaLogsAPI/JaegerAPI):
a total deadline, a size cap, TLS verified, no redirects or proxies followed, and
every failure a RemoteError naming the store and the URL without its credentials."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flobs.errors import RemoteError, UsageError
from flobs.live.signals import JaegerTraces, LokiLogs, TempoTraces, VictoriaLogsLogs
from flobs.live.store_api import StoreAPI
from flobs.live.stores import JaegerAPI, VictoriaLogsAPI
from tests.conftest import free_port, require_tool
from tests.deploy.certs import make_ca, make_server_cert
from tests.live.hostile_server import (
    Handler,
    HostileServer,
    claims_700_mb,
    drip_body,
    drip_headers,
    hostile_server,
)

CLIENTS = [
    StoreAPI,
    LokiLogs,
    TempoTraces,
    VictoriaLogsLogs,
    JaegerTraces,
    VictoriaLogsAPI,
    JaegerAPI,
]


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile_server() as srv:
        yield srv


def _failure(api: StoreAPI, path: str = "/x") -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        api.get(path)
    return caught.value


@pytest.mark.parametrize("client", CLIENTS)
def test_every_store_client_is_a_store_api_with_its_own_name(client: type[StoreAPI]) -> None:
    api = client("http://127.0.0.1:9/")
    assert isinstance(api, StoreAPI)
    assert api.where("/p") == f"{client.kind} at http://127.0.0.1:9/p"
    with api as entered:  # closing is a no-op for every one of them: nothing stays open
        assert entered is api


@pytest.mark.parametrize("route", [drip_headers, drip_body(b'{"data": [')])
def test_a_dripping_store_is_cut_off_at_the_timeout(server: HostileServer, route: object) -> None:
    server.default = route  # type: ignore[assignment]
    started = time.monotonic()
    error = _failure(JaegerAPI(server.url, timeout=1.0), "/api/services")
    assert time.monotonic() - started < 6  # 1 s, plus a loaded CI machine
    assert error.message == f"Jaeger at {server.url}/api/services: no complete answer within 1s"


def test_an_answer_past_the_size_cap_is_refused_unread(server: HostileServer) -> None:
    server.default = claims_700_mb
    error = _failure(VictoriaLogsAPI(server.url, timeout=5))
    assert error.message == (
        f"VictoriaLogs at {server.url}/x: the answer is 734003200 bytes, more than the 32 MiB limit"
    )
    assert server.sent < 1024 * 1024


def test_credentials_in_the_url_never_reach_a_message() -> None:
    port = free_port()  # nothing listens there
    error = _failure(StoreAPI(f"http://admin:pw-never-shown@127.0.0.1:{port}"))
    text = f"{error.message} {error.hint}"
    assert "pw-never-shown" not in text and "admin" not in text
    assert error.message.startswith(f"cannot reach store at http://***@127.0.0.1:{port}/x: ")
    assert error.hint == "is it running, and is the URL the store's base URL?"


def test_a_url_httpx_cannot_parse_is_a_usage_error_without_its_credentials() -> None:
    with pytest.raises(UsageError) as caught:
        LokiLogs("http://admin:pw-never-shown@[::1").host_logs("h", 60)
    assert caught.value.message == (
        "Loki URL 'http://***@[::1' is not a valid URL (Invalid port: ':1')"
    )


def test_a_redirect_is_not_followed(server: HostileServer) -> None:
    server.routes["/elsewhere"] = lambda h: h.answer(200, {"data": ["followed"]})

    def redirect(h: Handler) -> None:
        h.head(302, Location=f"{server.url}/elsewhere", Content_Length="0")

    server.routes["/x"] = redirect
    error = _failure(StoreAPI(server.url))
    assert error.message == f"store at {server.url}/x answered HTTP 302, not JSON: 'an empty body'"
    assert [path for _, path, _ in server.seen] == ["/x"]


def test_proxies_from_the_environment_are_not_used(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server.default = lambda h: h.answer(200, {"data": ["flintlockd"]})
    assert JaegerAPI(server.url).services() == ["flintlockd"]


def test_tls_is_verified(tmp_path: Path) -> None:
    require_tool("openssl")
    ca = make_ca(tmp_path / "ca")
    pair = make_server_cert(ca, tmp_path / "server", "store", ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pair.cert, pair.key)
    with hostile_server() as srv:
        srv.socket = context.wrap_socket(srv.socket, server_side=True)
        srv.default = lambda h: h.answer(200, {"data": []})
        url = f"https://127.0.0.1:{srv.server_address[1]}"
        error = _failure(StoreAPI(url, timeout=5))
    assert error.message.startswith(f"cannot reach store at {url}/x: ConnectError: ")
    assert "CERTIFICATE_VERIFY_FAILED" in error.message


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, b"", "refused the request (HTTP 401)"),
        (403, b"{}", "refused the request (HTTP 403)"),
        (404, b"", "answered HTTP 404"),
        (
            502,
            b"<html>bad gateway</html>",
            "answered HTTP 502, not JSON: '<html>bad gateway</html>'",
        ),
        (500, b'{"error": "boom"}', "answered HTTP 500: {'error': 'boom'}"),
    ],
)
def test_get_maps_every_refusal_to_a_remote_error(
    server: HostileServer, status: int, body: bytes, message: str
) -> None:
    server.default = lambda h: h.answer(status, body)
    assert _failure(StoreAPI(server.url)).message == f"store at {server.url}/x {message}"


def test_get_returns_json_and_a_404_only_when_asked(server: HostileServer) -> None:
    server.routes["/doc"] = lambda h: h.answer(200, {"data": [1]})
    api = StoreAPI(server.url)
    assert api.get("/doc", {"q": "a b"}) == (200, {"data": [1]})
    assert api.get("/missing", not_found_ok=True) == (404, None)
    assert server.seen[0][1] == "/doc?q=a+b"


def test_get_lines_reads_one_document_a_line_and_names_a_bad_line(server: HostileServer) -> None:
    server.routes["/ok"] = lambda h: h.answer(200, b'{"n": "1"}\n\n{"n": "2"}\n')
    server.routes["/bad"] = lambda h: h.answer(200, b'{"n": "1"}\nnot json\n')
    server.routes["/400"] = lambda h: h.answer(400, b"cannot parse query")
    api = VictoriaLogsAPI(server.url)
    assert api.get_lines("/ok") == [{"n": "1"}, {"n": "2"}]
    with pytest.raises(RemoteError) as caught:
        api.get_lines("/bad")
    assert (
        caught.value.message == f"VictoriaLogs at {server.url}/bad: a line is not JSON: 'not json'"
    )
    with pytest.raises(RemoteError) as caught:
        api.get_lines("/400")
    assert caught.value.message == (
        f"VictoriaLogs at {server.url}/400 answered HTTP 400: 'cannot parse query'"
    )


# --------------------------------------------------------------------------- the demo's clients


def test_victorialogs_api_queries_counts_flushes_and_lists_stream_fields(
    server: HostileServer,
) -> None:
    def query(h: Handler) -> None:
        if "stats" in h.path:
            h.answer(200, b'{"n": "7"}\n')
        else:
            h.answer(200, b'{"_msg": "a", "host": "h"}\n{"_msg": "b", "host": "h"}\n')

    server.routes["/select/logsql/query"] = query
    server.routes["/internal/force_flush"] = lambda h: h.answer(200, b"")
    server.routes["/select/logsql/stream_field_names"] = lambda h: h.answer(
        200, {"values": [{"value": "host", "hits": 3}, {"value": "level", "hits": 1}]}
    )
    api = VictoriaLogsAPI(server.url + "/")
    api.force_flush()
    assert api.query('{host="h"}', limit=5, start="5m") == [
        {"_msg": "a", "host": "h"},
        {"_msg": "b", "host": "h"},
    ]
    assert api.count('{host="h"}') == 7
    assert api.stream_field_names() == {"host", "level"}
    paths = [path for _, path, _ in server.seen]
    assert paths[0] == "/internal/force_flush"
    assert paths[1] == "/select/logsql/query?query=%7Bhost%3D%22h%22%7D&limit=5&start=5m"


def test_victorialogs_api_says_when_force_flush_fails(server: HostileServer) -> None:
    server.default = lambda h: h.answer(503, b"")
    with pytest.raises(RemoteError) as caught:
        VictoriaLogsAPI(server.url).force_flush()
    assert caught.value.message == (
        f"VictoriaLogs at {server.url}/internal/force_flush answered HTTP 503: 'an empty body'"
    )


def test_jaeger_api_reads_data_and_an_unknown_trace_is_empty(server: HostileServer) -> None:
    server.routes["/api/services"] = lambda h: h.answer(200, {"data": ["b", "a"]})
    server.routes["/api/traces"] = lambda h: h.answer(
        200,
        {
            "data": [
                {
                    "processes": {
                        "p1": {
                            "serviceName": "flintlockd",
                            "tags": [{"key": "host.name", "value": "h"}],
                        }
                    },
                    "spans": [
                        {
                            "traceID": "t",
                            "spanID": "s",
                            "operationName": "op",
                            "processID": "p1",
                            "tags": [{"key": "otel.status_code", "value": "ERROR"}],
                        }
                    ],
                }
            ]
        },
    )
    api = JaegerAPI(server.url)
    assert api.services() == ["a", "b"]
    ((span,),) = api.find_traces("flintlockd", tags={"host.name": "h"})
    assert (span.trace_id, span.service, span.process_tags, span.error) == (
        "t",
        "flintlockd",
        {"host.name": "h"},
        True,
    )
    assert api.trace("0" * 32) == []  # the hostile server's default: 404
