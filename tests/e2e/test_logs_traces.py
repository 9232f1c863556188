"""Logs and traces end to end, with the real programs (issue 11).

Three simulated hosts, each an instrumented flintlockd sending OTLP spans to its own
real collector, which tails the simulator's logrus file and ships logs to a real
VictoriaLogs and spans to a real Jaeger v2, all on loopback. The Loki push path is
proven with VictoriaLogs' Loki endpoint and the generated Promtail client config.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from flobs import yamlio
from flobs.artifacts import promtail
from flobs.live.demo import LiveFleet, demo_inventory, start_fleet, write_inventory
from flobs.live.processes import Supervisor
from flobs.live.stores import JaegerAPI, VictoriaLogsAPI, victorialogs_argv
from flobs.model import Endpoint
from tests.artifacts.test_promtail import corpus_lines, example_doc, fleet_of, run_pipeline
from tests.conftest import free_port, require_major, require_tool
from tests.helpers import run_flobs

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

T = TypeVar("T")
CLUSTER = "e2e-lt"


def eventually(probe: Callable[[], T | None], timeout: float = 45.0, every: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"not within {timeout:.0f}s; last probe gave {last!r}")


@pytest.fixture(scope="module")
def telemetry_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFleet]:
    for tool in ("otelcol", "jaeger", "victoria-logs", "prometheus-node-exporter"):
        require_tool(tool)
    prometheus = require_major("prometheus", 3)
    del prometheus
    workdir = tmp_path_factory.mktemp("logs-traces")
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.11"
    doc = demo_inventory(3, workdir, first_address=base, cluster=CLUSTER, telemetry=True)
    inventory = workdir / "inventory.yaml"
    write_inventory(doc, inventory)
    live = start_fleet(inventory, workdir, seed=7)
    try:
        yield live
    finally:
        live.stop()


def vl(live: LiveFleet) -> VictoriaLogsAPI:
    return VictoriaLogsAPI(live.fleet.central.logs.query_url)


def jaeger(live: LiveFleet) -> JaegerAPI:
    return JaegerAPI(live.fleet.central.traces.query_url)


def host_rows(api: VictoriaLogsAPI, host: str) -> list[dict[str, str]]:
    api.force_flush()
    return api.query(f'{{cluster="{CLUSTER}", host="{host}"}}', limit=500)


def test_every_hosts_log_lines_reach_victorialogs_with_the_dashboard_stream_fields(
    telemetry_fleet: LiveFleet,
) -> None:
    live = telemetry_fleet
    with vl(live) as api:
        for host in live.fleet.hosts:
            rows = eventually(lambda h=host.name: host_rows(api, h))  # type: ignore[misc]
            stream = rows[0]["_stream"]
            for field in ("cluster", "host", "level", "component"):
                assert f"{field}=" in stream, stream
            for field in ("vmid", "trace_id", "span_id"):
                assert f"{field}=" not in stream, stream
            assert {r["host"] for r in rows} == {host.name}
            assert {r["service.name"] for r in rows} == {"flintlockd"}
            # The body is flintlockd's line; its JSON fields are fields of the entry.
            with_vm = [r for r in rows if r.get("vmid")]
            assert with_vm and all(r["_msg"].startswith("{") for r in with_vm)
            assert {r["level"] for r in rows} <= {"debug", "info", "warning", "error"}
        names = api.stream_field_names(f'{{cluster="{CLUSTER}"}}')
        assert {"cluster", "host", "level", "component"} <= names
        assert not {"vmid", "trace_id", "span_id"} & names

        # The panels' LogsQL, with the dashboard variables filled in. Failed calls are
        # random (seeded per host), so the first error line may take a few ticks.
        def errors() -> Any:
            api.force_flush()
            return api.query(
                f'{{cluster="{CLUSTER}", host=~".*", level=~"error|fatal|panic"}}'
                " | stats by (host) count() as n"
            )

        assert eventually(errors), "no error lines: the simulator's failed calls log errors"


def test_every_hosts_spans_reach_jaeger_with_host_and_cluster(telemetry_fleet: LiveFleet) -> None:
    live = telemetry_fleet
    with jaeger(live) as api:
        eventually(lambda: "flintlockd" in api.services())
        for host in live.fleet.hosts:
            traces = eventually(
                lambda h=host.name: api.find_traces(  # type: ignore[misc]
                    "flintlockd", tags={"host.name": h}, limit=50
                )
            )
            spans = [s for t in traces for s in t]
            assert {s.process_tags["host.name"] for s in spans} == {host.name}
            assert {s.process_tags["flintlock.cluster"] for s in spans} == {CLUSTER}
            assert {s.process_tags["rack"] for s in spans} == {host.label_dict["rack"]}
            assert any(s.operation.endswith("/GetMicroVM") for s in spans)


def test_a_trace_id_seen_in_a_log_line_resolves_to_its_trace(telemetry_fleet: LiveFleet) -> None:
    live = telemetry_fleet
    with vl(live) as logs, jaeger(live) as traces:

        def linked() -> list[dict[str, str]]:
            logs.force_flush()
            return logs.query(f'{{cluster="{CLUSTER}"}} trace_id:* component:=plans', limit=20)

        rows = eventually(linked)
        resolved = 0
        for row in rows[:5]:
            spans = eventually(lambda r=row: traces.trace(r["trace_id"]))  # type: ignore[misc]
            assert row["span_id"] in {s.span_id for s in spans}
            step = next(s for s in spans if s.span_id == row["span_id"])
            assert step.operation == f"plan step {row['step']}"
            resolved += 1
        assert resolved >= 1


def test_one_collector_killed_stops_only_its_hosts_logs_and_spans(
    telemetry_fleet: LiveFleet,
) -> None:
    live = telemetry_fleet
    victim, *others = [h.name for h in live.fleet.hosts]
    with vl(live) as logs, jaeger(live) as traces:

        def counts() -> dict[str, tuple[int, int]]:
            logs.force_flush()
            out = {}
            for h in (victim, *others):
                n_logs = logs.count(f'{{cluster="{CLUSTER}", host="{h}"}}')
                found = traces.find_traces(
                    "flintlockd", tags={"host.name": h}, limit=100000, lookback="2h"
                )
                out[h] = (n_logs, len(found))
            return out

        eventually(lambda: all(a and b for a, b in counts().values()))
        live.supervisor.stop(f"otelcol-{victim}")
        time.sleep(3)  # its last batches flush on shutdown
        before = counts()
        time.sleep(8)  # > the 5 s batch timeout: the others flush at least once more
        after = counts()
        assert after[victim] == before[victim], (before, after)
        for h in others:
            assert after[h][0] > before[h][0], (h, before, after)
            assert after[h][1] > before[h][1], (h, before, after)


def test_verify_names_the_host_whose_collector_died_and_the_signals_it_lost(
    telemetry_fleet: LiveFleet,
) -> None:
    """flobs verify against the real VictoriaLogs and Jaeger (issue 12's done-when)."""
    live = telemetry_fleet
    victim, *others = [h.name for h in live.fleet.hosts]
    urls = live.stores()
    assert urls["logs"] and urls["traces"]
    args = (
        "verify", "-i", live.workdir / "inventory.yaml", "--out", live.out,
        "--victorialogs", urls["logs"], "--jaeger", urls["traces"],
        "--signals-window", "10s",
    )  # fmt: skip
    with vl(live) as logs:
        logs.force_flush()

    # Idempotent: the test above may have stopped it already. The other hosts must then
    # pass while the victim fails, which also proves their signals are healthy.
    live.supervisor.stop(f"otelcol-{victim}")
    time.sleep(13)  # past the 10 s window: the victim's last batch is older than that

    def lost() -> Any:
        with vl(live) as logs:
            logs.force_flush()
        r = run_flobs(*args)
        return r if r.code == 1 else None

    r = eventually(lost, timeout=40)
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("result: FAILED")]
    assert f"{victim}: logs, traces" in line, r.stdout
    for host in others:
        assert f"{host}:" not in line, r.stdout


# --------------------------------------------------------------------------- Loki push


def test_the_generated_log_shipper_client_pushes_into_victorialogs_loki_endpoint(
    tmp_path: Path,
) -> None:
    """Promtail cannot run here (AGPL); its generated client URL, labels and pipeline
    stages can: the lines go through the stages (as the Promtail tests emulate them)
    and are pushed, in Loki's push format, to the URL the config names."""
    binary = require_tool("victoria-logs")
    listen = Endpoint("127.0.0.1", free_port())
    doc = example_doc()
    doc["central"].pop("loki")
    doc["central"]["logs"] = {"backend": "victorialogs", "url": f"http://{listen}"}
    fleet = fleet_of(doc)
    host = fleet.hosts[0]
    (data,) = promtail.host_files(fleet.host_scope, host).values()
    config = yamlio.load(data.decode())
    (client,) = config["clients"]
    stages = config["scrape_configs"][0]["pipeline_stages"]
    assert client["url"] == f"http://{listen}/insert/loki/api/v1/push?_msg_field=msg"
    with Supervisor(tmp_path / "logs") as sup:
        # The corpus was logged on 2026-11-24; a short retention would drop it.
        argv = victorialogs_argv(binary, listen, tmp_path / "vl", retention="100y")
        sup.start("victoria-logs", argv)
        sup.wait_ready("victoria-logs", f"http://{listen}/health", expect="OK")
        read_time = datetime.now(UTC)
        streams: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
        for line in corpus_lines():
            entry = run_pipeline(stages, line, read_time)
            assert entry is not None
            labels = tuple(sorted({**client["external_labels"], **entry.labels}.items()))
            stamp = str(int(entry.timestamp.timestamp() * 1e9))
            streams.setdefault(labels, []).append([stamp, entry.line])
        body = {"streams": [{"stream": dict(k), "values": v} for k, v in streams.items()]}
        r = httpx.post(client["url"], json=body, timeout=10)
        assert r.status_code in (200, 204), r.text
        with VictoriaLogsAPI(f"http://{listen}") as api:
            api.force_flush()
            rows = api.query(f'{{host="{host.name}"}}', limit=1000)
            assert len(rows) == len(corpus_lines())
            names = api.stream_field_names("*")
            assert {"cluster", "host", "service_name", "level", "component", "rack"} <= names
            assert not {"vmid", "trace_id"} & names
            # logrus' msg is the message; a non-JSON line (a panic) is its own message.
            messages = {r["_msg"] for r in rows}
            assert "missing _msg field" not in " ".join(messages)
            with_vmid = [r for r in rows if r.get("vmid")]
            assert with_vmid and all("/" in r["vmid"] for r in with_vmid)
