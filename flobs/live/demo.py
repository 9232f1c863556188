"""`flobs demo`: a whole simulated fleet on this machine, with the real Prometheus.

Each simulated host gets its own loopback address (127.0.0.11, .12, … — all of
127.0.0.0/8 is loopback on Linux, so no setup is needed) and a free port for every
endpoint, so the inventory passes flobs' own checks (unique addresses; in federation
mode the local Prometheus listens on the host's address). Then: generate, start the
simulators (threads), node_exporter, process-exporter (if installed) and a local
Prometheus per host, the centre (Prometheus, or VictoriaMetrics in remote_write mode),
wait for every host to arrive, and verify. When Alertmanager is installed the centre's
alerts go to a real one (and, in remote_write mode, vmalert evaluates the central rules),
whose only receiver is a webhook sink inside the demo: what it delivers is listed in
demo.json.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from flobs import tools, versions, yamlio
from flobs.artifacts.series import RPC_CALLS
from flobs.errors import FlobsError, SystemFailure, UsageError
from flobs.generate import generate
from flobs.live import stores
from flobs.live.federation import federation_access
from flobs.live.processes import PACKAGES, MissingTools, Supervisor, require
from flobs.live.prometheus_api import PrometheusAPI, QueryFailed
from flobs.live.signals import JaegerTraces, VictoriaLogsLogs
from flobs.live.verify import VerifyReport, verify
from flobs.live.webhook import WebhookSink
from flobs.model import Endpoint, Fleet, Host
from flobs.sim.host import SimulatedHost

Mode = Literal["federation", "remote_write"]
# Stopped last (senders first): the stores every host sends to.
CENTRE_PROCESSES = (
    "prometheus-central",
    "victoria-metrics",
    "victoria-logs",
    "jaeger",
    "alertmanager",
)
# What the demo's log and trace path needs (`make tools` builds them).
TELEMETRY_TOOLS = ("otelcol", "jaeger", "victoria-logs")
Progress = Callable[[str], None]
MAX_HOSTS = 200
FIRST_ADDRESS = "127.0.0.11"
# Short intervals so data crosses the pipeline in seconds, not minutes.
DEMO_INTERVAL = "1s"
DEMO_FLUSH = "10s"  # Firecracker's is 60 s; shorter, so flush-to-flush change is visible
# The demo's only Alertmanager receiver: the webhook sink the demo runs.
DEMO_RECEIVER = "demo-webhook"
# A process that goes away pages within seconds, not minutes. The other alerts keep their
# defaults: the host-capacity ones read this machine's real node_exporter (a container's
# unsynchronised clock is real, and would page every "host" at once).
DEMO_ALERTS = {"host_down_for": "10s", "flintlockd_down_for": "10s", "agent_down_for": "10s"}
# One notification per group, soon; nothing repeats while the demo runs.
DEMO_GROUPING = {"group_wait": "1s", "group_interval": "5s", "repeat_interval": "24h"}


class PortPool:
    """Free TCP ports per address, never handing out one twice."""

    def __init__(self) -> None:
        self._given: set[tuple[str, int]] = set()

    def take(self, address: str) -> int:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((address, 0))
                port = int(s.getsockname()[1])
            if (address, port) not in self._given and port not in {p for _, p in self._given}:
                self._given.add((address, port))
                return port
        raise SystemFailure(f"no free TCP port on {address}")


def demo_inventory(
    hosts: int,
    workdir: Path,
    *,
    mode: Mode = "federation",
    first_address: str = FIRST_ADDRESS,
    cluster: str = "demo",
    flush_interval: str = DEMO_FLUSH,
    ports: PortPool | None = None,
    prometheus_version: str | None = None,
    telemetry: bool = False,
    webhook: str | None = None,
) -> dict[str, Any]:
    """An inventory of ``hosts`` simulated hosts on loopback, every port free right now.

    ``prometheus_version`` is the version of the binary that will run it (host and
    centre alike), so the files are written for the program that reads them.
    With ``telemetry`` each host's collector ships traces to a central Jaeger and
    flintlockd's logs to a central VictoriaLogs (the runnable, Apache-2.0 stores).
    With ``webhook`` (a URL) the centre's alerts go to a generated Alertmanager on
    loopback whose one receiver posts to it, with the demo's short timings.
    """
    if not 1 <= hosts <= MAX_HOSTS:
        raise UsageError(f"--hosts must be between 1 and {MAX_HOSTS}")
    pool = ports or PortPool()
    base = ipaddress.IPv4Address(first_address)
    entries = []
    for i in range(hosts):
        addr = str(base + i)
        if not ipaddress.IPv4Address(addr).is_loopback:
            raise UsageError(f"{addr} is not a loopback address")
        name = f"{cluster}-{i + 1}"

        def ep(addr: str = addr) -> str:
            return f"{addr}:{pool.take(addr)}"

        entries.append(
            {
                "name": name,
                "address": addr,
                "labels": {"rack": f"r{i // 2 + 1:02d}"},
                "vars": {
                    "flintlockd": {
                        "grpc_endpoint": ep(),
                        "http_endpoint": ep(),
                        "metrics_endpoint": ep(),
                    },
                    "flintlock_metrics": {"endpoint": ep(), "flush_interval": flush_interval},
                    "node_exporter": {"endpoint": ep()},
                    "process_exporter": {"endpoint": ep()},
                    "local_prometheus": {"listen": ep()},
                    "logs": {
                        # The collector tails the simulator's file; with no agent the
                        # journal default keeps flobs' file-source warning out of the way.
                        "source": "file" if telemetry else "journal",
                        "path": str(workdir / "logs" / name / "flintlockd.log"),
                        "positions_dir": str(workdir / "positions" / name),
                        "listen": ep(),
                    },
                    "otelcol": {
                        "grpc_endpoint": ep(),
                        "http_endpoint": ep(),
                        "health_endpoint": ep(),
                        "metrics_endpoint": ep(),
                        "spanmetrics_endpoint": ep(),
                        **({"logs_pipeline": True} if telemetry else {}),
                    },
                },
            }
        )
    central_port = pool.take("127.0.0.1")
    prometheus: dict[str, Any] = {
        "listen": f"127.0.0.1:{central_port}",
        "url": f"http://127.0.0.1:{central_port}",
        "scrape_interval": DEMO_INTERVAL,
        "evaluation_interval": DEMO_INTERVAL,
    }
    defaults: dict[str, Any] = {
        "scrape_interval": DEMO_INTERVAL,
        "evaluation_interval": DEMO_INTERVAL,
        "providers": ["firecracker", "cloud-hypervisor"],
    }
    if prometheus_version is not None:
        prometheus["version"] = prometheus_version
        defaults["local_prometheus"] = {"version": prometheus_version}
    if mode == "remote_write":
        store = pool.take("127.0.0.1")
        prometheus["mode"] = "remote_write"
        # VictoriaMetrics: write at /api/v1/write, Prometheus query API at the root.
        prometheus["url"] = f"http://127.0.0.1:{store}"
        prometheus["remote_write"] = {
            "url": f"http://127.0.0.1:{store}/api/v1/write",
            "queue": {"max_samples_per_send": 500},
        }
    return {
        "apiVersion": "flobs/v1",
        "cluster": cluster,
        "defaults": defaults,
        "hosts": entries,
        "central": {
            "prometheus": prometheus,
            **_stores(pool, telemetry),
            "grafana": {"url": "http://127.0.0.1:3000"},
            **(_alerting(pool, webhook, mode) if webhook else {}),
        },
    }


def _alerting(pool: PortPool, webhook: str, mode: Mode) -> dict[str, Any]:
    local = "127.0.0.1"
    am: dict[str, Any] = {
        "listen": f"{local}:{pool.take(local)}",
        "receivers": [{"name": DEMO_RECEIVER, "webhook": [{"url": webhook}]}],
        **DEMO_GROUPING,
    }
    if mode == "remote_write":
        am["vmalert_listen"] = f"{local}:{pool.take(local)}"
    return {"alertmanager": am, "alerts": dict(DEMO_ALERTS)}


def _stores(pool: PortPool, telemetry: bool) -> dict[str, Any]:
    if not telemetry:
        # Nothing listens here; log and trace panels stay empty.
        return {
            "loki": {"url": "http://127.0.0.1:3100/loki/api/v1/push"},
            "traces": {"otlp_endpoint": "127.0.0.1:4317", "insecure": True},
        }
    local = "127.0.0.1"
    return {
        "logs": {"backend": "victorialogs", "url": f"http://{local}:{pool.take(local)}"},
        "traces": {
            "backend": "jaeger",
            "otlp_endpoint": f"{local}:{pool.take(local)}",
            "insecure": True,  # loopback, no credentials
            "query_url": f"http://{local}:{pool.take(local)}",
        },
    }


def drop_agents_not_run(doc: dict[str, Any], *, otelcol: bool, process_exporter: bool) -> None:
    """Turn off, in a demo inventory, the host agents this machine cannot run.

    An agent the inventory declares is scraped; one that is not running is `up == 0`
    and pages (OtelCollectorDown, HostExporterDown) on a fleet that is healthy. Without
    the collector's logs pipeline the hosts ship logs with Promtail, which the demo never
    runs (AGPL) and the inventory cannot turn off: its alert is left out instead.
    """
    for host in doc["hosts"]:
        if not otelcol:
            host["vars"]["otelcol"]["enabled"] = False
        if not process_exporter:
            host["vars"]["process_exporter"]["enabled"] = False
    if not otelcol:
        overrides = doc.setdefault("extensions", {}).setdefault("overrides", {})
        overrides.setdefault("alerts", {})["LogShipperDown"] = {"disable": True}


def write_inventory(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "A simulated Flintlock fleet on loopback, written by `flobs demo`.\n"
        "Every address is in 127.0.0.0/8; every port was free when it was written."
    )
    path.write_text(yamlio.dump(doc, header=header), encoding="utf-8")


@dataclass(frozen=True)
class LocalRuleFailure:
    host: str
    rule: str
    error: str


@dataclass
class LiveFleet:
    """Everything running for one simulated fleet; stop with ``stop()``."""

    fleet: Fleet
    out: Path
    workdir: Path
    supervisor: Supervisor
    simulators: dict[str, SimulatedHost] = field(default_factory=dict)
    # Where the demo's Alertmanager delivers (None: no alerting here, or not the demo's).
    webhook: WebhookSink | None = None
    _json_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def central_url(self) -> str:
        return self.fleet.central.prometheus.url

    def api(self) -> PrometheusAPI:
        return PrometheusAPI(self.central_url)

    def local_prometheus_name(self, host: Host) -> str:
        return f"prometheus-{host.name}"

    def stop_host_prometheus(self, host_name: str) -> None:
        self.supervisor.stop(self.local_prometheus_name(self.fleet.host(host_name)))

    def wait_for_hosts(
        self, timeout: float = 60.0, progress: Progress | None = None
    ) -> VerifyReport:
        """Poll until every host is present at the centre (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        shown = -1
        with self.api() as api:
            while True:
                report = verify(self.fleet, api, hosts_only=True)
                present = len(report.hosts) - len(report.failed_hosts)
                if progress and present != shown:
                    progress(f"{present}/{len(report.hosts)} hosts at the centre")
                    shown = present
                if report.ok or time.monotonic() > deadline:
                    return report
                time.sleep(1.0)

    def verify(self) -> VerifyReport:
        """verify as a user runs it against this fleet: metrics at the centre, and logs,
        spans and log-to-trace correlation per host where the stores run."""
        urls = self.stores()
        logs = VictoriaLogsLogs(urls["logs"]) if urls["logs"] else None
        traces = JaegerTraces(urls["traces"]) if urls["traces"] else None
        try:
            with self.api() as api:
                return verify(self.fleet, api, out=self.out, logs=logs, traces=traces)
        finally:
            for backend in (logs, traces):
                if backend is not None:
                    backend.close()

    def local_rule_failures(self) -> list[LocalRuleFailure]:
        """Host recording rules whose last evaluation failed (each local /api/v1/rules).

        The centre cannot see these: a failing rule just produces no series, which
        looks like "no data". Here the local servers are at hand, so ask them.
        """
        failures = []
        access = federation_access(self.fleet, why="the demo")  # TLS and the user, if set
        for host in self.fleet.hosts:
            try:
                with access.client(host, timeout=5) as local:
                    groups = local.get_json("/api/v1/rules")["data"]["groups"]
            except (FlobsError, KeyError, TypeError) as err:
                url = f"{access.url(host)}/api/v1/rules"
                failures.append(LocalRuleFailure(host.name, "(all)", f"{url}: {err}"))
                continue
            for group in groups:
                for rule in group.get("rules") or []:
                    if rule.get("health") == "err":
                        failures.append(
                            LocalRuleFailure(
                                host.name, str(rule.get("name")), str(rule.get("lastError"))
                            )
                        )
        return failures

    def stores(self) -> dict[str, str | None]:
        """Base URLs of the central stores' HTTP APIs (None: not running here)."""
        roles = {c.role: c.url for c in self.supervisor.children.values() if c.host is None}
        return {
            "prometheus": self.central_url,
            "logs": roles.get("victoria-logs"),
            "traces": roles.get("jaeger"),
            "alertmanager": roles.get("alertmanager"),
            "vmalert": roles.get("vmalert"),
        }

    def demo_json(self) -> dict[str, Any]:
        """What `flobs demo --workdir DIR` writes to DIR/demo.json: every process, and the
        alerts the webhook sink received so far (one entry per alert per notification)."""
        processes: list[dict[str, Any]] = []
        for host, sim in self.simulators.items():
            endpoint = sim.host.vars.flintlockd.metrics_endpoint
            processes.append(
                {
                    "role": "simulator",
                    "host": host,
                    "pid": os.getpid(),  # the simulators are threads of the demo itself
                    "url": f"http://{endpoint}" if endpoint else None,
                    "log": str(sim.log_path),
                }
            )
        for child in self.supervisor.children.values():
            processes.append(
                {
                    "role": child.role,
                    "host": child.host,
                    "pid": child.proc.pid,
                    "url": child.url,
                    "log": str(child.log),
                }
            )
        sink = self.webhook
        if sink is not None:
            processes.append(
                {
                    "role": "webhook",
                    "host": None,
                    "pid": os.getpid(),  # a thread of the demo, like the simulators
                    "url": sink.url,
                    "log": str(sink.log) if sink.log else None,
                }
            )
        alerting = {
            "alertmanager": self.stores()["alertmanager"],
            "webhook": sink.url if sink else None,
            "notifications": [d.to_json() for d in sink.received()] if sink else [],
        }
        return {"central": self.stores(), "alerting": alerting, "processes": processes}

    def write_demo_json(self) -> Path:
        """(Re)write DIR/demo.json whole: readers never see half of it."""
        path = self.workdir / "demo.json"
        with self._json_lock:  # the sink's thread rewrites it on every notification
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(self.demo_json(), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        return path

    def stop(self) -> None:
        try:
            self.supervisor.stop_all(last=CENTRE_PROCESSES)
        finally:
            for sim in self.simulators.values():
                sim.stop()
            self.simulators.clear()
            if self.webhook is not None:
                self.webhook.stop()


def telemetry_tools_for(fleet: Fleet) -> tuple[str, ...]:
    """The log/trace programs the inventory's stores and collectors need."""
    c = fleet.central
    needed = []
    if any(h.vars.otelcol.enabled and h.vars.otelcol.logs_pipeline for h in fleet.hosts):
        needed.append("otelcol")
    if c.traces.backend == "jaeger":
        needed.append("jaeger")
    if c.logs.backend == "victorialogs":
        needed.append("victoria-logs")
    return tuple(needed)


def telemetry_available() -> bool:
    return all(tools.find_all(name) for name in TELEMETRY_TOOLS)


def alerting_tools_for(fleet: Fleet) -> tuple[str, ...]:
    """Alertmanager for a generated config; vmalert wherever remote_write mode alerts."""
    am = fleet.central.alertmanager
    if am is None:
        return ()
    needed: tuple[str, ...] = ("alertmanager",) if am.generated else ()
    if fleet.central.prometheus.mode == "remote_write":
        needed += ("vmalert",)
    return needed


def alerting_tools(mode: Mode) -> tuple[str, ...]:
    """What the demo's alerting needs in ``mode``."""
    return ("alertmanager", "vmalert") if mode == "remote_write" else ("alertmanager",)


def tools_for(mode: Mode) -> tuple[str, ...]:
    central = ("victoria-metrics",) if mode == "remote_write" else ()
    return ("prometheus", "prometheus-node-exporter", *central)


def start_fleet(
    inventory: Path,
    workdir: Path,
    *,
    seed: int = 1,
    progress: Progress | None = None,
    webhook: WebhookSink | None = None,
) -> LiveFleet:
    """Generate OUT from ``inventory`` and start the whole fleet; the caller stops it.

    ``webhook``: a started sink the inventory's receiver posts to; the fleet stops it.
    """
    say = progress or (lambda _msg: None)
    out = workdir / "out"
    fleet = generate(inventory, out).fleet
    mode: Mode = fleet.central.prometheus.mode
    bins = require(*tools_for(mode), *telemetry_tools_for(fleet), *alerting_tools_for(fleet))
    bins["prometheus"] = prometheus_binary(fleet.central.prometheus.version)
    for host in fleet.hosts:
        if host.vars.local_prometheus.version != fleet.central.prometheus.version:
            raise UsageError(
                f"host {host.name} runs Prometheus {host.vars.local_prometheus.version} "
                f"and the centre {fleet.central.prometheus.version}: the demo runs one binary",
                hint="give local_prometheus.version and central.prometheus.version one value",
            )
    optional = require_optional("prometheus-process-exporter")
    live = LiveFleet(
        fleet, out, workdir, Supervisor(workdir / "logs" / "processes"), webhook=webhook
    )
    try:
        _start_all(live, bins, optional, seed, say)
    except BaseException:
        live.stop()
        raise
    return live


def require_optional(name: str) -> str | None:
    found = tools.find_all(name)
    return found[0] if found else None


def prometheus_binary(version: str) -> str:
    """The installed ``prometheus`` of the major version the files were written for."""
    major = versions.prometheus_major(version)
    found = tools.by_major("prometheus").get(major)
    if found is None:
        raise MissingTools([f"prometheus {major}.x"])
    return found


def newest_prometheus_version() -> str | None:
    """``X.Y`` of the newest installed ``prometheus``: what the demo writes for."""
    newest = max(tools.by_major("prometheus").items(), default=None)
    version = tools.tool_version(newest[1]) if newest else None
    return ".".join(version.split(".")[:2]) if version else None


@dataclass(frozen=True)
class CentralProcess:
    """One central program of the demo: started in list order, stopped after the hosts.

    Adding a central program (e.g. Alertmanager) is adding an entry to the list
    ``central_processes`` returns.
    """

    role: str  # demo.json role: prometheus, victoria-metrics, jaeger, victoria-logs, …
    name: str  # the supervisor's name for it (and its log file)
    argv: list[str]
    url: str  # base URL of its HTTP API
    ready: str  # polled until it answers 200
    expect: str | None = None
    after_hosts: bool = False  # a federating Prometheus starts once the hosts are up
    # vmalert starts once every host's data is in the store: before that, the inventory's
    # hosts are missing there, and a short `for:` pages FlobsHostsMissing at start-up.
    after_data: bool = False
    cwd: Path | None = None  # where it runs (vmalert's -rule paths are relative)


def central_processes(
    live: LiveFleet, bins: dict[str, str], ports: PortPool | None = None
) -> list[CentralProcess]:
    """The central programs the fleet's inventory asks for, in start order."""
    fleet, out, data = live.fleet, live.out, live.workdir / "data"
    c = fleet.central
    procs: list[CentralProcess] = []
    if c.alertmanager is not None and c.alertmanager.generated:
        # First: the centre's first notification must have somewhere to go.
        procs.append(alertmanager_process(fleet, out, data / "alertmanager", bins["alertmanager"]))
    if c.logs.backend == "victorialogs":
        base = c.logs.query_url.rstrip("/")
        procs.append(
            CentralProcess(
                "victoria-logs",
                "victoria-logs",
                stores.victorialogs_argv(
                    bins["victoria-logs"],
                    _endpoint_of(base),
                    data / "victoria-logs",
                ),
                base,
                f"{base}/health",
                expect="OK",
            )
        )
    if c.traces.backend == "jaeger":
        pool = ports or PortPool()
        grpc = _endpoint_of("http://" + c.traces.otlp_endpoint)
        query = _endpoint_of(c.traces.query_url)
        jports = stores.JaegerPorts(
            otlp_grpc=grpc,
            otlp_http=Endpoint(grpc.host, pool.take(grpc.host)),
            query_http=query,
            query_grpc=Endpoint(query.host, pool.take(query.host)),
        )
        config = stores.write_jaeger_config(jports, live.workdir / "jaeger.yaml")
        base = c.traces.query_url.rstrip("/")
        procs.append(
            CentralProcess(
                "jaeger",
                "jaeger",
                stores.jaeger_argv(bins["jaeger"], config),
                base,
                f"{base}/api/services",
            )
        )
    p = c.prometheus
    if p.mode == "remote_write":
        store = p.url.rstrip("/")
        procs.append(
            CentralProcess(
                "victoria-metrics",
                "victoria-metrics",
                [
                    bins["victoria-metrics"],
                    f"-httpListenAddr={store.split('://', 1)[1]}",
                    f"-storageDataPath={data / 'victoria-metrics'}",
                    "-retentionPeriod=1d",
                    # Query results normally hide the newest 30 s; the demo wants them now.
                    "-search.latencyOffset=1s",
                    # Polling an empty result must not cache "empty" for the next poll.
                    "-search.disableCache",
                    "-loggerLevel=WARN",
                ],
                store,
                f"{store}/health",
                expect="OK",
            )
        )
        if c.alertmanager is not None:
            procs.append(vmalert_process(fleet, out, bins["vmalert"]))
    else:
        procs.append(
            CentralProcess(
                "prometheus",
                "prometheus-central",
                [
                    bins["prometheus"],
                    f"--config.file={out / 'central' / 'prometheus.yml'}",
                    f"--web.listen-address={p.listen}",
                    f"--storage.tsdb.path={data / 'central'}",
                    "--log.level=warn",
                ],
                p.url.rstrip("/"),
                f"{p.url.rstrip('/')}/-/ready",
                after_hosts=True,
            )
        )
    return procs


def alertmanager_process(fleet: Fleet, out: Path, data: Path, binary: str) -> CentralProcess:
    """The generated central/alertmanager.yml in a real Alertmanager, as its header says."""
    am = fleet.central.alertmanager
    assert am is not None
    assert am.generated
    url = am.urls[0].rstrip("/")
    return CentralProcess(
        "alertmanager",
        "alertmanager",
        [
            binary,
            f"--config.file={out / 'central' / 'alertmanager.yml'}",
            f"--web.listen-address={am.listen}",
            f"--storage.path={data}",
            "--cluster.listen-address=",  # no gossip: it would bind 0.0.0.0:9094
            "--log.level=warn",
        ],
        url,
        f"{url}/-/ready",
    )


def vmalert_process(fleet: Fleet, out: Path, binary: str) -> CentralProcess:
    """vmalert with exactly the flags flobs generated (central/vmalert.args), run from
    central/ as that file's header says."""
    lines = (out / "central" / "vmalert.args").read_text(encoding="utf-8").splitlines()
    args = [line for line in lines if line and not line.startswith("#")]
    am = fleet.central.alertmanager
    assert am is not None
    url = f"http://{am.vmalert_listen}"
    return CentralProcess(
        "vmalert",
        "vmalert",
        [binary, *args, "-loggerLevel=WARN"],
        url,
        f"{url}/health",
        expect="OK",
        after_data=True,
        cwd=out / "central",
    )


def _endpoint_of(url: str) -> Endpoint:
    endpoint = Endpoint.parse(url.split("://", 1)[1].split("/", 1)[0])
    if endpoint is None:  # the demo's own inventory always names a port
        raise ValueError(f"no host:port in {url!r}")
    return endpoint


def _start_central(live: LiveFleet, proc: CentralProcess, say: Progress) -> None:
    say(f"starting {proc.role} on {proc.url}")
    live.supervisor.start(proc.name, proc.argv, role=proc.role, url=proc.url, cwd=proc.cwd)
    live.supervisor.wait_ready(proc.name, proc.ready, expect=proc.expect)


def _start_all(
    live: LiveFleet, bins: dict[str, str], process_exporter: str | None, seed: int, say: Progress
) -> None:
    fleet, out, data, sup = live.fleet, live.out, live.workdir / "data", live.supervisor
    central = central_processes(live, bins)
    for proc in central:
        if not (proc.after_hosts or proc.after_data):
            _start_central(live, proc, say)
    collectors = [h for h in fleet.hosts if h.vars.otelcol.enabled and "otelcol" in bins]
    for host in collectors:
        # Before the simulators, so their first spans have somewhere to go.
        o = host.vars.otelcol
        sup.start(
            f"otelcol-{host.name}",
            [bins["otelcol"], f"--config={out / 'hosts' / host.name / 'otelcol.yaml'}"],
            role="otelcol",
            host=host.name,
            url=f"http://{o.http_endpoint}",
        )
    if collectors:
        say(f"starting {len(collectors)} OpenTelemetry Collectors")
    for host in collectors:
        sup.wait_ready(f"otelcol-{host.name}", f"http://{host.vars.otelcol.health_endpoint}/")
    say(f"starting {len(fleet.hosts)} simulated hosts")
    for host in fleet.hosts:
        sim = SimulatedHost(fleet, host, seed=seed)
        sim.start()
        live.simulators[host.name] = sim
    for host in fleet.hosts:
        v, base = host.vars, out / "hosts" / host.name
        if v.node_exporter.enabled:
            sup.start(
                f"node_exporter-{host.name}",
                [
                    bins["prometheus-node-exporter"],
                    f"--web.listen-address={v.node_exporter.endpoint}",
                    f"--web.config.file={base / 'exporters' / 'node_exporter-web.yml'}",
                ],
                role="node_exporter",
                host=host.name,
                url=f"http://{v.node_exporter.endpoint}",
            )
        if v.process_exporter.enabled and process_exporter:
            sup.start(
                f"process-exporter-{host.name}",
                [
                    process_exporter,
                    "-web.listen-address",
                    str(v.process_exporter.endpoint),
                    "-config.path",
                    str(base / "exporters" / "process-exporter.yml"),
                ],
                role="process_exporter",
                host=host.name,
                url=f"http://{v.process_exporter.endpoint}",
            )
        web = []
        if v.local_prometheus.web is not None:  # TLS / basic auth, as the unit runs it
            web = [f"--web.config.file={base / 'prometheus-web.yml'}"]
        sup.start(
            live.local_prometheus_name(host),
            [
                bins["prometheus"],
                f"--config.file={base / 'prometheus.yml'}",
                f"--web.listen-address={v.local_prometheus.listen}",
                f"--storage.tsdb.path={data / host.name}",
                f"--storage.tsdb.retention.time={v.local_prometheus.retention}",
                *web,
                "--log.level=warn",
            ],
            role="prometheus",
            host=host.name,
            url=f"http://{v.local_prometheus.listen}",
        )
    say(f"starting {len(fleet.hosts)} local Prometheus servers")
    for host in fleet.hosts:
        sup.wait_ready(live.local_prometheus_name(host), **_local_ready(fleet, host))
    for proc in central:
        if proc.after_hosts:
            _start_central(live, proc, say)
    later = [proc for proc in central if proc.after_data]
    if later:
        report = live.wait_for_hosts(timeout=90.0, progress=say)
        if not report.ok:
            missing = ", ".join(h.name for h in report.failed_hosts)
            raise SystemFailure(
                f"hosts never reached the centre, so {later[0].role} was not started: {missing}"
            )
    for proc in later:
        _start_central(live, proc, say)


def _local_ready(fleet: Fleet, host: Host) -> dict[str, Any]:
    """How to ask a local Prometheus whether it is ready: as the centre federates it."""
    web = host.vars.local_prometheus.web
    listen = host.vars.local_prometheus.listen
    if web is None:
        return {"url": f"http://{listen}/-/ready"}
    fed = fleet.central.prometheus.federation_auth
    out: dict[str, Any] = {
        "url": f"{'https' if web.tls else 'http'}://{host.federation_target}/-/ready",
        "verify": ssl.create_default_context(cafile=fed.ca_file),
    }
    if fed.username and fed.password_file:
        password = Path(fed.password_file).read_text(encoding="utf-8").strip()
        out["auth"] = (fed.username, password)
    return out


@dataclass(frozen=True)
class DemoResult:
    fleet: Fleet
    inventory: Path
    out: Path
    central_url: str
    report: VerifyReport
    waited_seconds: float
    local_rule_failures: tuple[LocalRuleFailure, ...] = ()
    signals: tuple[HostSignals, ...] = ()


@dataclass(frozen=True)
class HostSignals:
    """What of one host reached the central log and trace stores."""

    host: str
    log_lines: int
    traces: int


def _latency_at_centre(live: LiveFleet) -> bool:
    """Every host's span-derived request metrics reached the centre (the latency panels)."""
    with live.api() as api:
        try:
            samples = api.query(f"count by (host) ({RPC_CALLS})")
        except (QueryFailed, httpx.HTTPError):
            return False
    return len(samples) >= len(live.fleet.hosts)


def wait_for_signals(
    live: LiveFleet, timeout: float = 45.0, progress: Progress | None = None
) -> tuple[HostSignals, ...]:
    """Poll VictoriaLogs and Jaeger until every host has log lines and traces there, and
    the centre has every host's request metrics derived from its spans."""
    urls = live.stores()
    if not urls["logs"] or not urls["traces"]:
        return ()
    deadline = time.monotonic() + timeout
    with stores.VictoriaLogsAPI(urls["logs"]) as logs, stores.JaegerAPI(urls["traces"]) as tr:
        while True:
            logs.force_flush()
            found = tuple(
                HostSignals(
                    h.name,
                    logs.count(f'{{cluster="{live.fleet.cluster}", host="{h.name}"}}'),
                    len(tr.find_traces("flintlockd", tags={"host.name": h.name}, limit=1000)),
                )
                for h in live.fleet.hosts
            )
            done = all(s.log_lines and s.traces for s in found) and _latency_at_centre(live)
            if done or time.monotonic() > deadline:
                if progress:
                    ready = sum(bool(s.log_lines and s.traces) for s in found)
                    progress(f"{ready}/{len(found)} hosts' logs and traces at the centre")
                return found
            time.sleep(1.0)


@contextmanager
def run_demo(
    hosts: int,
    workdir: Path,
    *,
    mode: Mode = "federation",
    seed: int = 1,
    timeout: float = 90.0,
    progress: Progress | None = None,
) -> Iterator[tuple[DemoResult, LiveFleet]]:
    """Start a demo fleet, wait for it, verify it; everything stops when the block ends."""
    require(*tools_for(mode))  # fail before writing anything
    say = progress or (lambda _msg: None)
    telemetry = telemetry_available()
    if not telemetry:
        missing = [n for n in TELEMETRY_TOOLS if not tools.find_all(n)]
        say(f"logs and traces off: {', '.join(missing)} not installed (`make tools` builds them)")
    missing = [n for n in alerting_tools(mode) if not tools.find_all(n)]
    if missing:
        packages = " ".join(sorted({PACKAGES.get(n, n) for n in missing}))
        say(f"alerts off: {', '.join(missing)} not installed (apt-get install {packages})")
    sink = None if missing else WebhookSink(log=workdir / "logs" / "webhook.jsonl").start()
    inventory = workdir / "inventory.yaml"
    started = time.monotonic()
    try:
        doc = demo_inventory(
            hosts,
            workdir,
            mode=mode,
            prometheus_version=newest_prometheus_version(),
            telemetry=telemetry,
            webhook=sink.url if sink else None,
        )
        drop_agents_not_run(
            doc,
            otelcol=telemetry,
            process_exporter=bool(tools.find_all("prometheus-process-exporter")),
        )
        write_inventory(doc, inventory)
        live = start_fleet(inventory, workdir, seed=seed, progress=progress, webhook=sink)
    except BaseException:
        if sink is not None:
            sink.stop()
        raise
    try:
        if sink is not None:
            # demo.json follows the notifications as they arrive.
            sink.on_delivery = live.write_demo_json
        live.write_demo_json()
        live.wait_for_hosts(timeout=timeout, progress=progress)
        # Rates over the 1m Grafana interval need two samples at the centre.
        time.sleep(3.0)
        signals = wait_for_signals(live, progress=progress)
        report = live.verify()
        result = DemoResult(
            live.fleet,
            inventory,
            live.out,
            live.central_url,
            report,
            time.monotonic() - started,
            tuple(live.local_rule_failures()),
            signals,
        )
        yield result, live
    finally:
        live.stop()
