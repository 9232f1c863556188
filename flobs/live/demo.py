"""`flobs demo`: a whole simulated fleet on this machine, with the real Prometheus.

Each simulated host gets its own loopback address (127.0.0.11, .12, … — all of
127.0.0.0/8 is loopback on Linux, so no setup is needed) and a free port for every
endpoint, so the inventory passes flobs' own checks (unique addresses; in federation
mode the local Prometheus listens on the host's address). Then: generate, start the
simulators (threads), node_exporter, process-exporter (if installed) and a local
Prometheus per host, the centre (Prometheus, or VictoriaMetrics in remote_write mode),
wait for every host to arrive, and verify.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from flobs import httpio, tools, versions, yamlio
from flobs.artifacts.series import RPC_CALLS
from flobs.errors import SystemFailure, UsageError
from flobs.generate import generate
from flobs.live import stores
from flobs.live.processes import MissingTools, Supervisor, require
from flobs.live.prometheus_api import PrometheusAPI, QueryFailed
from flobs.live.signals import JaegerTraces, VictoriaLogsLogs
from flobs.live.verify import VerifyReport, verify
from flobs.model import Endpoint, Fleet, Host
from flobs.sim.host import SimulatedHost

Mode = Literal["federation", "remote_write"]
# Stopped last (senders first): the stores every host sends to.
CENTRE_PROCESSES = ("prometheus-central", "victoria-metrics", "victoria-logs", "jaeger")
# What the demo's log and trace path needs (`make tools` builds them).
TELEMETRY_TOOLS = ("otelcol", "jaeger", "victoria-logs")
Progress = Callable[[str], None]
MAX_HOSTS = 200
FIRST_ADDRESS = "127.0.0.11"
# Short intervals so data crosses the pipeline in seconds, not minutes.
DEMO_INTERVAL = "1s"
DEMO_FLUSH = "10s"  # Firecracker's is 60 s; shorter, so flush-to-flush change is visible


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
) -> dict[str, Any]:
    """An inventory of ``hosts`` simulated hosts on loopback, every port free right now.

    ``prometheus_version`` is the version of the binary that will run it (host and
    centre alike), so the files are written for the program that reads them.
    With ``telemetry`` each host's collector ships traces to a central Jaeger and
    flintlockd's logs to a central VictoriaLogs (the runnable, Apache-2.0 stores).
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
        },
    }


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
        for host in self.fleet.hosts:
            url = f"http://{host.vars.local_prometheus.listen}/api/v1/rules"
            try:
                groups = json.loads(httpio.get(url, timeout=5).content)["data"]["groups"]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
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
        }

    def demo_json(self) -> dict[str, Any]:
        """What `flobs demo --workdir DIR` writes to DIR/demo.json: every process."""
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
        return {"central": self.stores(), "processes": processes}

    def write_demo_json(self) -> Path:
        path = self.workdir / "demo.json"
        path.write_text(json.dumps(self.demo_json(), indent=2) + "\n", encoding="utf-8")
        return path

    def stop(self) -> None:
        try:
            self.supervisor.stop_all(last=CENTRE_PROCESSES)
        finally:
            for sim in self.simulators.values():
                sim.stop()
            self.simulators.clear()


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


def tools_for(mode: Mode) -> tuple[str, ...]:
    central = ("victoria-metrics",) if mode == "remote_write" else ()
    return ("prometheus", "prometheus-node-exporter", *central)


def start_fleet(
    inventory: Path, workdir: Path, *, seed: int = 1, progress: Progress | None = None
) -> LiveFleet:
    """Generate OUT from ``inventory`` and start the whole fleet; the caller stops it."""
    say = progress or (lambda _msg: None)
    out = workdir / "out"
    fleet = generate(inventory, out).fleet
    mode: Mode = fleet.central.prometheus.mode
    bins = require(*tools_for(mode), *telemetry_tools_for(fleet))
    bins["prometheus"] = prometheus_binary(fleet.central.prometheus.version)
    for host in fleet.hosts:
        if host.vars.local_prometheus.version != fleet.central.prometheus.version:
            raise UsageError(
                f"host {host.name} runs Prometheus {host.vars.local_prometheus.version} "
                f"and the centre {fleet.central.prometheus.version}: the demo runs one binary",
                hint="give local_prometheus.version and central.prometheus.version one value",
            )
    optional = require_optional("prometheus-process-exporter")
    live = LiveFleet(fleet, out, workdir, Supervisor(workdir / "logs" / "processes"))
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


def central_processes(
    live: LiveFleet, bins: dict[str, str], ports: PortPool | None = None
) -> list[CentralProcess]:
    """The central programs the fleet's inventory asks for, in start order."""
    fleet, out, data = live.fleet, live.out, live.workdir / "data"
    c = fleet.central
    procs: list[CentralProcess] = []
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


def _endpoint_of(url: str) -> Endpoint:
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = netloc.rpartition(":")
    return Endpoint(host, int(port))


def _start_central(live: LiveFleet, proc: CentralProcess, say: Progress) -> None:
    say(f"starting {proc.role} on {proc.url}")
    live.supervisor.start(proc.name, proc.argv, role=proc.role, url=proc.url)
    live.supervisor.wait_ready(proc.name, proc.ready, expect=proc.expect)


def _start_all(
    live: LiveFleet, bins: dict[str, str], process_exporter: str | None, seed: int, say: Progress
) -> None:
    fleet, out, data, sup = live.fleet, live.out, live.workdir / "data", live.supervisor
    central = central_processes(live, bins)
    for proc in central:
        if not proc.after_hosts:
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
    inventory = workdir / "inventory.yaml"
    doc = demo_inventory(
        hosts,
        workdir,
        mode=mode,
        prometheus_version=newest_prometheus_version(),
        telemetry=telemetry,
    )
    write_inventory(doc, inventory)
    started = time.monotonic()
    live = start_fleet(inventory, workdir, seed=seed, progress=progress)
    try:
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
