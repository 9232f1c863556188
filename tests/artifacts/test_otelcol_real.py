"""The real OpenTelemetry Collector judges every otelcol.yaml flobs can write.

`otelcol validate --config FILE` builds the pipeline graph without starting it: it
refuses unknown components and keys, and runs each component's own validation. What
only a start shows (credentials that need TLS, a user name the basic authenticator
refuses) is proven by starting the collector. The binary is flobs' test build
(tools/otelcol, contrib v0.158.0), found through ``require_tool``.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from flobs import yamlio
from flobs.artifacts import otelcol
from flobs.model import Fleet
from tests.artifacts.test_promtail import example_doc, fleet_of, hostile_doc
from tests.checks.test_logs_checks import thousand_host_doc
from tests.conftest import free_port, require_tool

# Central variants: every auth and TLS form the schema allows, per destination.
AUTH: dict[str, dict[str, dict[str, Any]]] = {
    "none": {"traces": {}, "logs": {}},
    "bearer-mtls-headers": {
        "traces": {
            "bearer_token_file": "/etc/flobs/traces-token",
            "ca_file": "/etc/flobs/ca.pem",
            "cert_file": "/etc/flobs/client.pem",
            "key_file": "/etc/flobs/client.key",
            "headers_from_env": {"X-Scope-OrgID": "TRACES_TENANT"},
        },
        "logs": {"bearer_token_file": "/etc/flobs/logs-token", "ca_file": "/etc/flobs/ca.pem"},
    },
    "basic": {
        "traces": {"basic_auth": {"username": "fl", "password_file": "/etc/flobs/traces-pw"}},
        "logs": {"basic_auth": {"username": "fl", "password_file": "/etc/flobs/logs-pw"}},
    },
    "plaintext": {"traces": {"insecure": True}, "logs": {}},
    "skip-verify": {
        "traces": {"insecure_skip_verify": True},
        "logs": {"insecure_skip_verify": True},
    },
}
BACKENDS = [
    ("loki", "tempo"),
    ("victorialogs", "jaeger"),
    ("loki", "jaeger"),
    ("victorialogs", "tempo"),
]
# Host variants: collector release x sampling x logs pipeline.
HOST_VARS: list[dict[str, Any]] = [
    {"otelcol": {"version": version, **sampling, **logs_pipeline}, **source}
    for version, sampling, (logs_pipeline, source) in itertools.product(
        ("0.140.0", "0.144.0", "0.158.0", "0.160.0"),
        ({}, {"sampling_percentage": 12.5}),
        (
            ({}, {}),
            ({"logs_pipeline": True}, {"logs": {"source": "journal"}}),
            ({"logs_pipeline": True}, {"logs": {"source": "file"}}),
        ),
    )
]


def otelcol_binary() -> str:
    return require_tool("otelcol")


def variant_doc(auth: str, logs_backend: str, traces_backend: str, rotation: int) -> dict[str, Any]:
    doc = example_doc()
    doc["central"].pop("loki")
    https = "auth" if AUTH[auth]["logs"] else ""
    logs_url = {
        "loki": f"http{'s' if https else ''}://loki.example/loki/api/v1/push",
        "victorialogs": f"http{'s' if https else ''}://vl.example:9428",
    }[logs_backend]
    doc["central"]["logs"] = {"backend": logs_backend, "url": logs_url, **AUTH[auth]["logs"]}
    doc["central"]["traces"] = {
        "backend": traces_backend,
        "otlp_endpoint": f"{traces_backend}.example:4317",
        **copy.deepcopy(AUTH[auth]["traces"]),
    }
    for i, host in enumerate(doc["hosts"]):
        host["vars"] = copy.deepcopy(HOST_VARS[(rotation * 5 + i) % len(HOST_VARS)])
        if auth == "basic" and host["vars"]["otelcol"]["version"] < "0.158":
            host["vars"]["otelcol"]["version"] = "0.158.0"  # password_file needs it
    return doc


def every_variant() -> Iterator[tuple[str, Fleet]]:
    rotation = 0
    for auth in AUTH:
        for logs_backend, traces_backend in BACKENDS:
            yield (
                f"{auth}-{logs_backend}-{traces_backend}",
                fleet_of(variant_doc(auth, logs_backend, traces_backend, rotation)),
            )
            rotation += 1
    yield "hostile", fleet_of(hostile_doc())
    yield "example", fleet_of(example_doc())


def write_unique(out: Path, fleets: Iterator[tuple[str, Fleet]]) -> list[Path]:
    """Every otelcol.yaml of the fleets, one file per distinct content."""
    seen: dict[str, Path] = {}
    for name, fleet in fleets:
        for host in fleet.hosts:
            for data in otelcol.host_files(fleet.host_scope, host).values():
                digest = hashlib.sha256(data).hexdigest()
                if digest not in seen:
                    path = out / f"{name}-{host.name}.yaml"
                    path.write_bytes(data)
                    seen[digest] = path
    return list(seen.values())


def validate(binary: str, path: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [binary, "validate", f"--config={path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def validate_all(binary: str, paths: list[Path]) -> dict[Path, str]:
    """The files the collector refused, with its output."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: (p, *validate(binary, p)), paths))
    return {p: out for p, rc, out in results if rc != 0}


# --------------------------------------------------------------------------- validate


def test_every_variant_passes_real_otelcol_validate(tmp_path: Path) -> None:
    binary = otelcol_binary()
    paths = write_unique(tmp_path, every_variant())
    # 20 central variants x 6 hosts + hostile + example, minus identical files.
    assert len(paths) > 100
    refused = validate_all(binary, paths)
    assert refused == {}, next(iter(refused.items()))
    # The variants really cover both exporter generations and both batching forms.
    texts = [p.read_text(encoding="utf-8") for p in paths]
    for needle in ("otlp/traces:", "otlphttp/logs:", "otlp_grpc/traces:", "otlp_http/logs:"):
        assert any(needle in t for t in texts), needle
    assert any("  batch:\n" in t for t in texts)
    assert any("      batch:\n        flush_timeout" in t for t in texts)
    assert any("basicauth/logs:" in t for t in texts)
    assert any("journald:" in t for t in texts) and any("file_log:" in t for t in texts)
    assert any("  filelog:" in t for t in texts)  # releases before 0.158


def test_a_thousand_host_fleet_passes_real_otelcol_validate(tmp_path: Path) -> None:
    binary = otelcol_binary()
    doc = thousand_host_doc()
    for i, host in enumerate(doc["hosts"]):
        host.setdefault("vars", {})["otelcol"] = copy.deepcopy(HOST_VARS[i % len(HOST_VARS)])[
            "otelcol"
        ]
    paths = write_unique(tmp_path, iter([("fleet", fleet_of(doc))]))
    assert len(paths) == 1000  # every host's file differs (its name and labels)
    start = time.monotonic()
    refused = validate_all(binary, paths)
    assert refused == {}, next(iter(refused.items()))
    assert time.monotonic() - start < 600


def test_the_current_names_start_without_deprecation_warnings(tmp_path: Path) -> None:
    """Collector v0.158 warns at every start for the old names (`otlp`, `otlphttp`,
    `spanmetrics`, `filelog`); flobs writes the current ones for that release."""
    binary = otelcol_binary()
    doc = loopback_doc(tmp_path, free_port())
    doc["defaults"]["otelcol"]["logs_pipeline"] = True
    doc["defaults"]["logs"].update({"source": "file", "path": str(tmp_path / "f.log")})
    doc["central"]["loki"] = {"url": f"http://127.0.0.1:{free_port()}/loki/api/v1/push"}
    fleet = fleet_of(doc)
    (data,) = otelcol.host_files(fleet.host_scope, fleet.hosts[0]).values()
    for name in ("otlp_grpc/traces:", "otlp_http/logs:", "span_metrics:", "file_log:"):
        assert name in data.decode()
    old = data.decode().replace("otlp_grpc/traces", "otlp/traces")
    old = old.replace("otlp_http/logs", "otlphttp/logs")
    old = old.replace("span_metrics", "spanmetrics").replace("file_log", "filelog")
    outputs = {}
    for name, text in (("current", data.decode()), ("old", old)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(text, encoding="utf-8")
        collector = Collector(binary, config, tmp_path / f"{name}.log")
        try:
            health = fleet.hosts[0].vars.otelcol.health_endpoint
            wait_healthy(f"http://{health}/", collector)
        finally:
            collector.stop()
        outputs[name] = collector.output()
    for alias in ("otlp", "otlphttp", "spanmetrics", "filelog"):
        assert f'"{alias}" alias is deprecated' in outputs["old"], alias
    assert "deprecated" not in outputs["current"], outputs["current"]


# --------------------------------------------------------------------------- running


class Collector:
    """A real collector started from a generated config, stopped by PID."""

    def __init__(self, binary: str, config: Path, log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.proc = subprocess.Popen(
            [binary, f"--config={config}"],
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._file.close()


def loopback_doc(tmp_path: Path, traces_port: int) -> dict[str, Any]:
    """The example with one host whose collector listens on free loopback ports."""
    doc = example_doc()
    doc["hosts"] = doc["hosts"][:1]
    doc["hosts"][0].pop("vars", None)
    doc["defaults"]["otelcol"] = {
        "grpc_endpoint": f"127.0.0.1:{free_port()}",
        "http_endpoint": f"127.0.0.1:{free_port()}",
        "health_endpoint": f"127.0.0.1:{free_port()}",
        "metrics_endpoint": f"127.0.0.1:{free_port()}",
        "spanmetrics_endpoint": f"127.0.0.1:{free_port()}",
    }
    doc["defaults"]["logs"]["positions_dir"] = str(tmp_path / "positions")
    doc["central"]["traces"] = {"otlp_endpoint": f"127.0.0.1:{traces_port}", "insecure": True}
    return doc


def start(binary: str, tmp_path: Path, fleet: Fleet, name: str) -> Collector:
    (data,) = otelcol.host_files(fleet.host_scope, fleet.hosts[0]).values()
    config = tmp_path / f"{name}.yaml"
    config.write_bytes(data)
    return Collector(binary, config, tmp_path / f"{name}.log")


def otlp_json_span(trace_id: str, span_id: str) -> dict[str, Any]:
    now = time.time_ns()
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "flintlockd"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "microvm.services.api.v1alpha1.MicroVM/GetMicroVM",
                                "kind": 2,
                                "startTimeUnixNano": str(now - 2_000_000),
                                "endTimeUnixNano": str(now),
                            }
                        ]
                    }
                ],
            }
        ]
    }


def wait_healthy(url: str, collector: Collector, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if collector.proc.poll() is not None:
            pytest.fail(f"collector exited {collector.proc.returncode}:\n{collector.output()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"collector not healthy at {url}:\n{collector.output()}")


def test_a_real_collector_from_a_generated_config_accepts_otlp_spans(tmp_path: Path) -> None:
    binary = otelcol_binary()
    fleet = fleet_of(loopback_doc(tmp_path, free_port()))
    o = fleet.hosts[0].vars.otelcol
    collector = start(binary, tmp_path, fleet, "agent")
    try:
        wait_healthy(f"http://{o.health_endpoint}/", collector)
        body = otlp_json_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
        r = httpx.post(f"http://{o.http_endpoint}/v1/traces", json=body, timeout=10)
        assert r.status_code == 200, r.text
        # The collector counts what its receiver accepted (its own metrics, level normal).
        deadline = time.monotonic() + 20
        accepted = 0.0
        while time.monotonic() < deadline and accepted < 1:
            text = httpx.get(f"http://{o.metrics_endpoint}/metrics", timeout=5).text
            accepted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("otelcol_receiver_accepted_spans")
            )
            time.sleep(0.5)
        assert accepted >= 1, text
    finally:
        collector.stop()


@pytest.mark.parametrize(
    "auth",
    [
        {"bearer_token_file": "TOKEN"},
        {"basic_auth": {"username": "fl", "password_file": "TOKEN"}},
    ],
    ids=["bearer", "basic"],
)
def test_credentials_over_plaintext_grpc_stop_the_real_collector(
    tmp_path: Path, auth: dict[str, Any]
) -> None:
    """Why `insecure: true` with credentials is an inventory error: the collector's
    exporter refuses (grpc: the credentials require transport level security)."""
    binary = otelcol_binary()
    token = tmp_path / "token"
    token.write_text("s3cr3t", encoding="utf-8")
    doc = loopback_doc(tmp_path, free_port())
    auth = json.loads(json.dumps(auth).replace("TOKEN", str(token)))
    doc["central"]["traces"].update({"insecure": False, **auth})
    fleet = fleet_of(doc)
    (data,) = otelcol.host_files(fleet.host_scope, fleet.hosts[0]).values()
    # What flobs would have written had it accepted `insecure: true` with them.
    old = yamlio.load(data.decode())
    old["exporters"]["otlp_grpc/traces"]["tls"] = {"insecure": True}
    config = tmp_path / "old.yaml"
    config.write_text(yamlio.dump(old), encoding="utf-8")
    collector = Collector(binary, config, tmp_path / "old.log")
    try:
        rc = collector.wait_exit(30)
        assert rc not in (None, 0), collector.output()
        assert "credentials require transport level security" in collector.output()
    finally:
        collector.stop()
    # …and flobs now refuses the inventory instead.
    doc["central"]["traces"]["insecure"] = True
    from flobs.errors import InputError

    with pytest.raises(InputError) as err:
        fleet_of(doc)
    assert "transport level security" in err.value.problems[0].message


class _Capture:
    """A loopback HTTP server recording the Authorization header of each request."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.seen = []  # type: list[str]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append(self.headers.get("Authorization") or "")
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sent_password(
    binary: str, tmp_path: Path, config_text: str, fleet: Fleet, capture: _Capture
) -> str:
    """Start the collector, push one log record through it, return the password it sent."""
    import base64

    config = tmp_path / "c.yaml"
    config.write_text(config_text, encoding="utf-8")
    o = fleet.hosts[0].vars.otelcol
    collector = Collector(binary, config, tmp_path / "c.log")
    try:
        wait_healthy(f"http://{o.health_endpoint}/", collector)
        record = {"timeUnixNano": str(time.time_ns()), "body": {"stringValue": "x"}}
        body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
        r = httpx.post(f"http://{o.http_endpoint}/v1/logs", json=body, timeout=10)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not capture.seen:
            time.sleep(0.2)
        assert capture.seen, collector.output()
    finally:
        collector.stop()
    scheme, _, token = capture.seen[-1].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert user == "fl"
    return password


@pytest.mark.parametrize("password", ["#starts-with-hash", "{a: b}", "key: value", "p$w"])
def test_basic_auth_sends_the_password_file_exactly(tmp_path: Path, password: str) -> None:
    """basicauth `password_file` sends the file's text as it is.

    Finding with the real v0.158: the `${file:…}` form flobs wrote before sends these
    passwords exactly too (confmap keeps a string target's original text), so the
    YAML-parsing breakage seen in older collectors does not reproduce here; flobs
    still writes `password_file` (no expansion at all, and the file is re-read when
    it changes). The old form's result is pinned so a change is noticed.
    """
    binary = otelcol_binary()
    capture = _Capture()
    try:
        secret = tmp_path / "pw"
        secret.write_text(password, encoding="utf-8")
        doc = loopback_doc(tmp_path, free_port())
        doc["defaults"]["otelcol"]["logs_pipeline"] = True
        doc["defaults"]["logs"]["source"] = "file"
        doc["defaults"]["logs"]["path"] = str(tmp_path / "flintlockd.log")
        doc["central"].pop("loki")
        doc["central"]["logs"] = {
            "url": f"http://127.0.0.1:{capture.port}/loki/api/v1/push",
            "basic_auth": {"username": "fl", "password_file": str(secret)},
        }
        fleet = fleet_of(doc)
        (data,) = otelcol.host_files(fleet.host_scope, fleet.hosts[0]).values()
        assert sent_password(binary, tmp_path, data.decode(), fleet, capture) == password
        old = yamlio.load(data.decode())
        client = old["extensions"]["basicauth/logs"]["client_auth"]
        del client["password_file"]
        client["password"] = f"${{file:{secret}}}"
        capture.seen.clear()
        assert sent_password(binary, tmp_path, yamlio.dump(old), fleet, capture) == password
    finally:
        capture.close()
