"""Semantic checks and construction of the typed fleet model.

Runs after the schema check, so shapes and types are known to be right; what is
checked here is what a schema cannot say: uniqueness, references, port collisions,
values that depend on each other, and secure defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flobs import resources, versions
from flobs.inventory.extensions import extra_jobs, load_extensions, static_targets
from flobs.inventory.merge import BUILTIN, Layer, Merged, VarPath, merge_layers, overlay
from flobs.inventory.schema_check import schema_default_vars
from flobs.inventory.source import DocPath, Source
from flobs.model import (
    OTELCOL_LISTENERS,
    Alertmanager,
    AlertRoute,
    Alerts,
    Central,
    CentralPrometheus,
    ContinuousVerify,
    DatasourceRef,
    Endpoint,
    Exporter,
    ExtraScrapeJob,
    FileAuth,
    Fleet,
    Flintlockd,
    FlintlockMetrics,
    Grafana,
    Host,
    HostVars,
    Integration,
    LocalPrometheus,
    Logs,
    LogStore,
    Otelcol,
    Receiver,
    RemoteWrite,
    Traces,
    WebConfig,
)
from flobs.problems import Problem, Severity
from flobs.promtime import parse_duration

# A bcrypt hash as exporter-toolkit's basic_auth_users takes it ($2a$/$2b$/$2y$, cost, 53 chars).
BCRYPT_HASH = re.compile(r"\$2[aby]?\$[0-9]{2}\$[./A-Za-z0-9]{53}")
# Where the local Prometheus listens when nothing needs to reach it (remote_write mode).
REMOTE_WRITE_LOCAL_LISTEN = "127.0.0.1:9091"
# The oldest collector release flobs writes configs for (its journald operators,
# sending_queue and OTLP exporters behave as used here from then on).
OTELCOL_OLDEST = (0, 120, 0)

# Labels flobs sets itself, or that Prometheus owns.
RESERVED_LABELS = frozenset({"cluster", "host", "job", "instance"})

# Defaults for central.alerts, from the schema (their one place); the schema also
# bounds each one, so the rules and their unit tests stay small and meaningful.
ALERT_DEFAULTS: dict[str, str | float] = {
    key: sub["default"]
    for key, sub in resources.schema("inventory.schema.json")["properties"]["central"][
        "properties"
    ]["alerts"]["properties"].items()
}
# Alertmanager keys and the version that introduced them (the schema accepts them all).
ALERTMANAGER_KEY_SINCE: dict[tuple[str, str], str] = {("webhook", "url_file"): "0.26"}


def parse_endpoint(text: str) -> Endpoint:
    """``host:port`` or ``[v6]:port``; the schema already guaranteed the shape."""
    endpoint = Endpoint.parse(text)
    if endpoint is None:  # a schema that let it through is a bug
        raise ValueError(f"not an endpoint: {text!r}")
    return endpoint


class _Builder:
    def __init__(self, doc: dict[str, Any], source: Source, base_dir: Path | None = None) -> None:
        self.doc = doc
        self.src = source
        self.base_dir = base_dir
        self.problems: list[Problem] = []

    # -- problem helpers -------------------------------------------------------
    def error(
        self, path: DocPath, message: str, hint: str | None = None, *, at_key: bool = False
    ) -> None:
        self.problems.append(self.src.problem(path, message, hint, at_key=at_key))

    def warn(self, path: DocPath, message: str, hint: str | None = None) -> None:
        self.problems.append(self.src.problem(path, message, hint, severity=Severity.WARNING))

    def var_error(
        self,
        merged: Merged,
        host_path: DocPath,
        var_path: VarPath,
        message: str,
        hint: str | None = None,
        *,
        severity: Severity = Severity.ERROR,
        host: str | None = None,
        also: tuple[VarPath, ...] = (),
    ) -> None:
        """A problem at the place that set ``var_path`` (its defaults, group or host line).

        With ``host``, the message names the host only when the problem is that host's
        own (one of ``var_path`` and ``also`` is set in its vars, or comes from a
        built-in default reported at the host): a value from `defaults` or a group gives
        one message for all its hosts, which the loader reports once.
        """
        origin = merged.origin(var_path)
        where = host_path if origin[:1] == BUILTIN else origin
        if origin[:1] == BUILTIN:
            message += f" (built-in default of vars.{'.'.join(var_path)})"
        origins = [merged.origin(p) for p in (var_path, *also)]
        if host is not None and (
            origin[:1] == BUILTIN or any(o[:1] == ("hosts",) for o in origins)
        ):
            message = f"host {host}: {message}"
        self.problems.append(self.src.problem(where, message, hint, severity=severity))

    # -- the fleet ---------------------------------------------------------------
    def build(self, file_name: str, digest: str) -> Fleet:
        doc = self.doc
        groups: dict[str, Any] = doc.get("groups") or {}
        for gname, group in groups.items():
            self._check_labels((group or {}).get("labels") or {}, ("groups", gname, "labels"))

        base = merge_layers(
            [
                Layer(schema_default_vars(), BUILTIN),
                Layer(doc.get("defaults") or {}, ("defaults",)),
            ]
        )
        combos: dict[tuple[str, ...], Merged] = {}
        hosts: list[Host] = []
        names: dict[str, int] = {}
        addresses: dict[str, int] = {}
        for i, raw in enumerate(doc["hosts"]):
            hpath: DocPath = ("hosts", i)
            name = raw["name"]
            if name in names:
                self.error(
                    (*hpath, "name"),
                    f"duplicate host name `{name}`",
                    f"also used by $.hosts[{names[name]}]; host names must be unique",
                )
            names.setdefault(name, i)
            addr = raw["address"]
            if addr in addresses:
                self.error(
                    (*hpath, "address"),
                    f"duplicate address `{addr}`",
                    f"also used by $.hosts[{addresses[addr]}] "
                    f"({doc['hosts'][addresses[addr]]['name']}); each host needs its own",
                )
            addresses.setdefault(addr, i)

            host_groups = tuple(raw.get("groups") or ())
            known = [g for g in host_groups if g in groups]
            for j, g in enumerate(host_groups):
                if g not in groups:
                    self.error(
                        (*hpath, "groups", j),
                        f"unknown group `{g}`",
                        f"define it under `groups:` (known: {', '.join(sorted(groups)) or 'none'})",
                    )
            key = tuple(known)
            if key not in combos:
                merged = base
                for g in known:
                    merged = overlay(
                        merged, Layer((groups[g] or {}).get("vars") or {}, ("groups", g, "vars"))
                    )
                combos[key] = merged
            merged = combos[key]
            if raw.get("vars"):
                merged = overlay(merged, Layer(raw["vars"], (*hpath, "vars")))

            labels: dict[str, str] = {}
            for g in known:
                labels.update((groups[g] or {}).get("labels") or {})
            self._check_labels(raw.get("labels") or {}, (*hpath, "labels"))
            labels.update(raw.get("labels") or {})
            hvars = self._host_vars(merged, hpath)
            if hvars is None:
                continue
            host = Host(name, addr, host_groups, tuple(sorted(labels.items())), hvars, i)
            self._check_host(host, merged, hpath)
            self._check_extra_targets(host, merged, hpath)
            hosts.append(host)

        central = self._central(doc["central"])
        if "alertmanager" in doc["central"]:
            central = replace(
                central, alertmanager=self._alertmanager(doc["central"]["alertmanager"], hosts)
            )
            if central.prometheus.mode == "remote_write" and "\n" in doc["cluster"]:
                self.error(
                    ("cluster",),
                    "the cluster name holds a line break, which vmalert's flags "
                    "(central/vmalert.args, one per line) cannot carry",
                    "use a one-line cluster name",
                )
            if central.prometheus.mode == "remote_write":
                self._check_vmalert_values(doc["central"])
        extensions, found = load_extensions(doc, self.src, self.base_dir)
        self.problems.extend(found)
        fleet = Fleet(
            doc["apiVersion"],
            doc["cluster"],
            tuple(hosts),
            central,
            tuple(sorted(groups)),
            file_name,
            digest,
            extensions,
        )
        if central is not None:
            self._check_fleet(fleet)
        return fleet

    def _check_labels(self, labels: Mapping[str, Any], path: DocPath) -> None:
        from flobs.artifacts.promtail import PIPELINE_LABELS

        for name in labels:
            if name.startswith("__"):
                self.error(
                    (*path, name),
                    f"label `{name}` uses the reserved `__` prefix",
                    "Prometheus drops labels starting with __; rename it",
                    at_key=True,
                )
            elif name in RESERVED_LABELS:
                self.error(
                    (*path, name),
                    f"label `{name}` is set by flobs or Prometheus",
                    "`cluster` and `host` come from the inventory, `job`/`instance` "
                    "from Prometheus; rename yours (e.g. `site`, `node_role`)",
                    at_key=True,
                )
            elif name in PIPELINE_LABELS:
                # The log pipeline sets these per line; a host label of the same name
                # would be overridden on JSON lines only, so one label would mean two things.
                self.error(
                    (*path, name),
                    f"label `{name}` is also a Loki label the log pipeline sets from each line",
                    f"rename it (the log pipeline owns {', '.join(PIPELINE_LABELS)})",
                    at_key=True,
                )

    # -- host variables ------------------------------------------------------------
    def _host_vars(self, m: Merged, hpath: DocPath) -> HostVars | None:
        v = m.values
        before = len(self.problems)

        def dur(var_path: VarPath) -> str:
            value: str = _dig(v, var_path)
            if parse_duration(value) is None:
                self.var_error(
                    m,
                    hpath,
                    var_path,
                    f"{value!r} is not a valid duration",
                    "write it like 15s, 1m30s or 2h",
                )
            return value

        def ep(var_path: VarPath) -> Endpoint:
            value = _dig(v, var_path)
            e = parse_endpoint(value)
            if not 1 <= e.port <= 65535:
                self.var_error(
                    m, hpath, var_path, f"port {e.port} is out of range", "ports are 1-65535"
                )
            return e

        def prom_version(var_path: VarPath) -> str:
            value: str = _dig(v, var_path)
            if not versions.prometheus_supported(value):
                self.var_error(m, hpath, var_path, *_unsupported_prometheus(value))
            return value

        def opt_ep(var_path: VarPath) -> Endpoint | None:
            return None if _dig(v, var_path) is None else ep(var_path)

        interval = dur(("scrape_interval",))
        timeout = dur(("scrape_timeout",))
        iv, to = parse_duration(interval), parse_duration(timeout)
        if iv is not None and to is not None and to > iv:
            if m.is_builtin(("scrape_timeout",)):
                timeout = interval  # the default timeout follows a shorter interval
            else:
                self.var_error(
                    m,
                    hpath,
                    ("scrape_timeout",),
                    f"scrape_timeout {timeout} is longer than scrape_interval {interval}",
                    "promtool rejects this; lower scrape_timeout or raise scrape_interval",
                )
        fm = v["flintlock_metrics"]
        ne, pe = v["node_exporter"], v["process_exporter"]
        logs, otel = v["logs"], v["otelcol"]
        tls = ne.get("tls") or {}
        lp = v["local_prometheus"]
        listen_path: VarPath = ("local_prometheus", "listen")
        if m.is_builtin(listen_path) and self._mode() == "remote_write":
            # Nothing reaches a local Prometheus that pushes: keep it off the network.
            local_listen = parse_endpoint(REMOTE_WRITE_LOCAL_LISTEN)
        else:
            local_listen = ep(listen_path)
        if otel["memory_spike_limit_mib"] >= otel["memory_limit_mib"]:
            self.var_error(
                m,
                hpath,
                ("otelcol", "memory_spike_limit_mib"),
                "memory_spike_limit_mib must be below memory_limit_mib",
                "the memory_limiter refuses to start otherwise; 20-25% of the limit is usual",
            )
        otel_version = self._otelcol_version(m, hpath, otel)
        hv = HostVars(
            scrape_interval=interval,
            scrape_timeout=timeout,
            evaluation_interval=dur(("evaluation_interval",)),
            providers=tuple(v["providers"]),
            flintlockd=Flintlockd(
                grpc_endpoint=ep(("flintlockd", "grpc_endpoint")),
                http_endpoint=ep(("flintlockd", "http_endpoint")),
                metrics_endpoint=opt_ep(("flintlockd", "metrics_endpoint")),
                sample_limit=v["flintlockd"]["sample_limit"],
            ),
            flintlock_metrics=FlintlockMetrics(
                enabled=fm["enabled"],
                endpoint=ep(("flintlock_metrics", "endpoint")),
                path=fm["path"],
                flush_interval=dur(("flintlock_metrics", "flush_interval")),
                sample_limit=fm["sample_limit"],
            ),
            node_exporter=Exporter(
                enabled=ne["enabled"],
                endpoint=ep(("node_exporter", "endpoint")),
                sample_limit=ne["sample_limit"],
                allow_public=ne["allow_public"],
                tls_cert_file=tls.get("cert_file"),
                tls_key_file=tls.get("key_file"),
                tls_ca_file=tls.get("ca_file"),
                tls_server_name=tls.get("server_name"),
            ),
            process_exporter=Exporter(
                enabled=pe["enabled"],
                endpoint=ep(("process_exporter", "endpoint")),
                sample_limit=pe["sample_limit"],
                allow_public=pe["allow_public"],
            ),
            containerd_metrics_endpoint=opt_ep(("containerd", "metrics_endpoint")),
            local_prometheus=LocalPrometheus(
                listen=local_listen,
                retention=dur(("local_prometheus", "retention")),
                version=prom_version(("local_prometheus", "version")),
                storage_path=lp["storage_path"],
                web=self._web_config(m, hpath, lp.get("web")),
            ),
            logs=Logs(
                agent=logs["agent"],
                source=logs["source"],
                unit=logs["unit"],
                path=logs["path"],
                listen=ep(("logs", "listen")),
                positions_dir=logs["positions_dir"],
                allow_public=logs["allow_public"],
            ),
            otelcol=Otelcol(
                enabled=otel["enabled"],
                version=otel_version,
                grpc_endpoint=ep(("otelcol", "grpc_endpoint")),
                http_endpoint=ep(("otelcol", "http_endpoint")),
                health_endpoint=ep(("otelcol", "health_endpoint")),
                metrics_endpoint=ep(("otelcol", "metrics_endpoint")),
                spanmetrics_endpoint=ep(("otelcol", "spanmetrics_endpoint")),
                memory_limit_mib=otel["memory_limit_mib"],
                memory_spike_limit_mib=otel["memory_spike_limit_mib"],
                sampling_percentage=otel["sampling_percentage"],
                logs_pipeline=otel["logs_pipeline"],
                allow_public=otel["allow_public"],
            ),
        )
        extras = self._extra_jobs(m, hpath, v.get("extra_scrape_jobs") or {})
        if extras:
            hv = replace(hv, extra_scrape_jobs=extras)
        return None if len(self.problems) > before and _has_error(self.problems[before:]) else hv

    def _extra_jobs(
        self, m: Merged, hpath: DocPath, raw: dict[str, Any]
    ) -> tuple[ExtraScrapeJob, ...]:
        name = self.doc["hosts"][hpath[1]]["name"]
        jobs, problems = extra_jobs(raw, name)
        for var_path, message, hint in problems:
            self.var_error(m, hpath, var_path, message, hint)
        return tuple(
            ExtraScrapeJob(
                job,
                json.dumps(config, sort_keys=True, ensure_ascii=False),
                federate,
                ("extra_scrape_jobs", job),
            )
            for job, config, federate in jobs
        )

    def _check_extra_targets(self, host: Host, m: Merged, hpath: DocPath) -> None:
        """A local target of an extra job must not sit on a port another listener owns."""
        taken = [(lst.owner, lst.endpoint) for lst in host.listeners()]
        for job in host.vars.extra_scrape_jobs:
            for target in static_targets(job.config):
                ep = _target_endpoint(target)
                if ep is None or not (ep.is_loopback or ep.is_wildcard or ep.host == host.address):
                    continue
                for owner, other in taken:
                    if ep.port == other.port and _overlap(ep, other):
                        self.var_error(
                            m,
                            hpath,
                            (*job.var_path, "scrape"),
                            f"host {host.name}: extra scrape job `{job.name}` target {target} "
                            f"uses port {ep.port}, already taken by {owner} ({other})",
                            "the exporter it scrapes needs a port no other process of the "
                            "host listens on",
                        )
                        break
                else:
                    taken.append((f"extra_scrape_jobs.{job.name}", ep))

    def _mode(self) -> str:
        mode: str = self.doc["central"]["prometheus"].get("mode", "federation")
        return mode

    def _web_config(
        self, m: Merged, hpath: DocPath, raw: Mapping[str, Any] | None
    ) -> WebConfig | None:
        if not raw:
            return None
        tls = raw.get("tls") or {}
        users: list[tuple[str, str]] = []
        for user, hash_file in sorted((raw.get("basic_auth_users") or {}).items()):
            var_path = ("local_prometheus", "web", "basic_auth_users", user)
            path = (self.base_dir or Path.cwd()) / hash_file
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as err:
                reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
                self.var_error(
                    m,
                    hpath,
                    var_path,
                    f"cannot read the password hash of `{user}` from {hash_file}: {reason}",
                    "write it with `htpasswd -nBC 10 '' | tr -d ':\\n'` (paths are relative "
                    "to the inventory)",
                )
                continue
            # Never echo the content: it could be the password itself pasted by mistake.
            if not BCRYPT_HASH.fullmatch(text):
                self.var_error(
                    m,
                    hpath,
                    var_path,
                    f"{hash_file} does not hold a bcrypt hash (the password of `{user}`)",
                    "Prometheus' web config takes bcrypt hashes only: "
                    "`htpasswd -nBC 10 '' | tr -d ':\\n'`",
                )
                continue
            users.append((user, text))
        self_scrape = raw.get("self_scrape") or {}
        if raw.get("basic_auth_users") and not self_scrape:
            self.var_error(
                m,
                hpath,
                ("local_prometheus", "web", "basic_auth_users"),
                "with basic_auth_users the local Prometheus needs a credential to scrape "
                "itself (job `prometheus`), or its `up` is 0",
                "set vars.local_prometheus.web.self_scrape {username, password_file}",
            )
        elif self_scrape and self_scrape["username"] not in (raw.get("basic_auth_users") or {}):
            self.var_error(
                m,
                hpath,
                ("local_prometheus", "web", "self_scrape", "username"),
                f"self_scrape user `{self_scrape['username']}` is not in basic_auth_users",
                "use one of the users the web config lets in",
            )
        return WebConfig(
            tls_cert_file=tls.get("cert_file"),
            tls_key_file=tls.get("key_file"),
            client_ca_file=tls.get("client_ca_file"),
            basic_auth_users=tuple(users),
            self_username=self_scrape.get("username"),
            self_password_file=self_scrape.get("password_file"),
        )

    def _otelcol_version(
        self, m: Merged, hpath: DocPath, otel: Mapping[str, Any]
    ) -> tuple[int, int, int]:
        text: str = otel["version"]
        parts = [int(p) for p in text.split(".")]
        version = (parts[0], parts[1], parts[2] if len(parts) > 2 else 0)
        if version[0] != 0 or version < OTELCOL_OLDEST:
            oldest = ".".join(map(str, OTELCOL_OLDEST[:2]))
            self.var_error(
                m,
                hpath,
                ("otelcol", "version"),
                f"otelcol version {text} is not one flobs knows "
                f"(supported: {oldest} to 0.x; the OTLP exporter names and batching depend on it)",
                "give the contrib release you run, e.g. 0.158.0",
            )
        return version

    def _check_host(self, host: Host, m: Merged, hpath: DocPath) -> None:
        v = host.vars
        if v.flintlockd.metrics_endpoint is None:
            self.var_error(
                m,
                hpath,
                ("flintlockd", "metrics_endpoint"),
                "flintlockd has no debug endpoint, so it serves no /metrics; "
                "no flintlockd scrape job is generated and its dashboards stay empty",
                "run flintlockd with --debug-endpoint 127.0.0.1:10500 and set "
                "vars.flintlockd.metrics_endpoint",
                severity=Severity.WARNING,
                host=host.name,
            )
        if v.logs.source == "file" and (
            host.log_agent is not None or (v.otelcol.enabled and v.otelcol.logs_pipeline)
        ):
            # flintlockd opens --log-output with create+append but without write access
            # (pkg/log/log.go), so the file very likely stays empty (flintlock-facts.md).
            self.var_error(
                m,
                hpath,
                ("logs", "source"),
                f"host {host.name}: logs.source is file, but flintlockd opens its --log-output "
                "file without write access (upstream bug), so the file very likely stays empty",
                "ship from the journal: logs.source: journal (flintlockd logs to stderr, "
                "which systemd puts in the journal)",
                severity=Severity.WARNING,
            )
        # No two listeners of one host on the same port (flintlock-facts.md: 9090 trap).
        seen: dict[int, list[tuple[str, Endpoint, VarPath]]] = {}
        for listener in host.listeners():
            ep = listener.endpoint
            for owner, other, other_path in seen.get(ep.port, []):
                if _overlap(ep, other):
                    hint = "give one of them another port in the inventory (per host, group "
                    hint += "or defaults)"
                    if ep.port == 9090:
                        hint += "; note flintlockd's gRPC default 9090 is Prometheus' default"
                    self.var_error(
                        m,
                        hpath,
                        listener.var_path,
                        f"{listener.owner} ({ep}) uses port {ep.port}, "
                        f"already taken by {owner} ({other})",
                        hint,
                        host=host.name,
                        also=(other_path,),
                    )
                    break
            seen.setdefault(ep.port, []).append((listener.owner, ep, listener.var_path))
        # Secure default: agents listen on loopback unless the inventory allows otherwise.
        public_checks: list[tuple[str, Endpoint, bool, VarPath]] = [
            (
                "node_exporter",
                v.node_exporter.endpoint,
                v.node_exporter.allow_public,
                ("node_exporter", "endpoint"),
            ),
            (
                "process_exporter",
                v.process_exporter.endpoint,
                v.process_exporter.allow_public,
                ("process_exporter", "endpoint"),
            ),
        ]
        if host.log_agent is not None:
            public_checks.append(("logs", v.logs.listen, v.logs.allow_public, ("logs", "listen")))
        if v.otelcol.enabled:
            for key in OTELCOL_LISTENERS:
                public_checks.append(
                    ("otelcol", getattr(v.otelcol, key), v.otelcol.allow_public, ("otelcol", key))
                )
        for section, endpoint, allowed, var_path in public_checks:
            if not endpoint.is_loopback and not allowed:
                self.var_error(
                    m,
                    hpath,
                    var_path,
                    f"{'.'.join(var_path)} listens on {endpoint}, which is not loopback",
                    f"agents listen on 127.0.0.1 by default; set vars.{section}.allow_public: true "
                    "if it must be reachable from the network",
                    host=host.name,
                    also=((section, "allow_public"),),
                )

    # -- central -------------------------------------------------------------------
    def _central_prometheus_version(self, value: str) -> str:
        if not versions.prometheus_supported(value):
            self.error(("central", "prometheus", "version"), *_unsupported_prometheus(value))
        return value

    def _central(self, c: dict[str, Any]) -> Central:
        p = c["prometheus"]
        listen = parse_endpoint(p.get("listen", "0.0.0.0:9090"))
        if not 1 <= listen.port <= 65535:
            self.error(
                ("central", "prometheus", "listen"),
                f"port {listen.port} is out of range",
                "ports are 1-65535",
            )
        mode = p.get("mode", "federation")
        rw = None
        if mode == "remote_write":
            raw_rw = p.get("remote_write")
            if not raw_rw:
                self.error(
                    ("central", "prometheus", "mode"),
                    "mode is remote_write but central.prometheus.remote_write.url is not set",
                    "add central.prometheus.remote_write: {url: https://…/api/v1/write}",
                )
            else:
                q = raw_rw.get("queue") or {}
                rw = RemoteWrite(
                    raw_rw["url"],
                    _file_auth(raw_rw),
                    q.get("max_samples_per_send", 2000),
                    q.get("capacity", 10000),
                    q.get("max_shards", 50),
                )
        host_for_url = "localhost" if listen.is_wildcard else listen.host
        prom_url = p.get("url") or f"http://{Endpoint(host_for_url, listen.port)}"
        interval = p.get("scrape_interval", "30s")
        timeout = p.get("scrape_timeout", "25s")
        iv, to = parse_duration(interval), parse_duration(timeout)
        if iv is not None and to is not None and to > iv:
            if "scrape_timeout" in p:
                self.error(
                    ("central", "prometheus", "scrape_timeout"),
                    f"scrape_timeout {timeout} is longer than scrape_interval {interval}",
                    "promtool rejects this; lower scrape_timeout",
                )
            else:
                timeout = interval
        prometheus = CentralPrometheus(
            listen=listen,
            url=prom_url,
            scrape_interval=interval,
            scrape_timeout=timeout,
            evaluation_interval=p.get("evaluation_interval", "30s"),
            version=self._central_prometheus_version(p.get("version", "3.13")),
            mode=mode,
            remote_write=rw,
            extra_match=tuple(p.get("extra_match") or ()),
            retention=p.get("retention", "30d"),
            storage_path=p.get("storage_path", "/var/lib/prometheus/metrics2"),
            federation_auth=_file_auth(p.get("federation") or {}),
        )
        self._check_selectors(prometheus.extra_match)

        # Without these, every host would send to its own loopback and Grafana would
        # read the machine it runs on: wrong output without an error, unless the user
        # says everything runs on one machine (central.single_host).
        single_host = bool(c.get("single_host", False))
        one_machine = "or set central.single_host: true if everything runs on one machine"
        if mode == "remote_write" and "url" not in p and not single_host:
            self.error(
                ("central", "prometheus", "mode"),
                "mode is remote_write but central.prometheus.url is not set: Grafana and "
                f"`flobs verify` would query {prom_url} instead of the store hosts write to",
                f"add central.prometheus.url (the store's query URL), {one_machine}",
            )
        logs = self._log_store(c, single_host, one_machine)
        traces = self._traces(c, single_host, one_machine)

        g = c["grafana"]
        ds = g.get("datasources") or {}

        def ref(name: str, default_url: str, default: str = "") -> DatasourceRef:
            d = ds.get(name) or {}
            return DatasourceRef(
                d.get("uid", default or f"flobs-{name}"),
                d.get("name", default or f"flobs-{name}"),
                d.get("url", default_url),
            )

        grafana = Grafana(
            url=g["url"].rstrip("/"),
            folder=g.get("folder", "Flintlock"),
            folder_uid=g.get("folder_uid", "flobs-flintlock"),
            prometheus=ref("prometheus", prom_url),
            logs=ref("loki", logs.query_url, default=f"flobs-{logs.backend}"),
            traces=ref("tempo", traces.query_url, default=f"flobs-{traces.backend}"),
            dashboards_path=g.get("dashboards_path", "/var/lib/grafana/dashboards/flobs"),
        )
        uids = [grafana.prometheus.uid, grafana.logs.uid, grafana.traces.uid]
        if len(set(uids)) != 3:
            self.error(
                ("central", "grafana", "datasources"),
                "datasource uids must differ",
                f"got {', '.join(uids)}",
            )
        # The schema already refused unknown keys, wrong types and out-of-range values.
        alerts = {**ALERT_DEFAULTS, **(c.get("alerts") or {})}
        for key in ("url",):
            if urlsplit(g[key]).scheme == "http" and not _is_local_url(g[key]):
                self.warn(
                    ("central", "grafana", key),
                    "Grafana URL is plain http; the API token would cross the network unencrypted",
                    "use https://",
                )
        logs_key = "logs" if "logs" in c else "loki"
        self._warn_plaintext_credentials(logs, logs_key, traces, rw)
        insecure: list[DocPath] = [("central", logs_key), ("central", "traces")]
        if rw is not None:
            insecure.append(("central", "prometheus", "remote_write"))
        for where, auth in zip(
            insecure, [logs.auth, traces.auth, *([rw.auth] if rw else [])], strict=True
        ):
            if auth.insecure_skip_verify:
                self.warn(
                    (*where, "insecure_skip_verify"),
                    "TLS verification is off: anyone on the path can read and change this traffic",
                    "give a ca_file instead and remove insecure_skip_verify",
                )
        v = c.get("verify") or {}
        return Central(
            prometheus,
            logs,
            traces,
            grafana,
            Alerts(tuple(sorted(alerts.items()))),
            c.get(
                "runbook_base_url",
                "https://github.com/liquidmetal-dev/flobs/blob/main/docs/runbooks",
            ),
            ContinuousVerify(
                bool(v.get("enabled", False)),
                str(v.get("listen", "127.0.0.1:9465")),
                str(v.get("failing_for", "10m")),
            ),
        )

    def _warn_plaintext_credentials(
        self, logs: LogStore, logs_key: str, traces: Traces, rw: RemoteWrite | None
    ) -> None:
        """Every URL flobs sends a credential to, judged the same way as Grafana's:
        plain http to anything but this machine carries it readable on the network."""
        urls: list[tuple[DocPath, str, FileAuth, str]] = [
            (
                ("central", logs_key, "url"),
                logs.url,
                logs.auth,
                "Loki" if logs.backend == "loki" else "VictoriaLogs",
            ),
        ]
        if rw is not None:
            urls.append(
                (("central", "prometheus", "remote_write", "url"), rw.url, rw.auth, "remote_write")
            )
        for where, url, auth, what in urls:
            if auth.sends_credentials and urlsplit(url).scheme == "http" and not _is_local_url(url):
                self.warn(
                    where,
                    f"{what} URL is plain http; its "
                    f"{'bearer token' if auth.bearer_token_file else 'basic-auth password'} "
                    "would cross the network unencrypted",
                    "use https:// (and ca_file for a private CA)",
                )
        otlp_host = re.sub(r"^[a-z]+://", "", traces.otlp_endpoint).rsplit(":", 1)[0]
        if (
            traces.insecure
            and traces.auth.sends_credentials
            and not _is_local_url(f"http://{otlp_host}")
        ):
            self.warn(
                ("central", "traces", "insecure"),
                "credentials sent over plaintext OTLP (traces.insecure is true)",
                "turn insecure off and give a ca_file",
            )

    def _log_store(self, c: dict[str, Any], single_host: bool, one_machine: str) -> LogStore:
        if "logs" in c and "loki" in c:
            self.error(
                ("central", "loki"),
                "central.loki and central.logs both describe the log store",
                "keep central.logs (central.loki is its older spelling for backend: loki)",
                at_key=True,
            )
        key = "logs" if "logs" in c else "loki"
        raw = c.get(key)
        if raw is None:
            if not single_host:
                self.error(
                    ("central",),
                    "central.loki is not set: every host's log shipper would push to its own "
                    "localhost:3100, so no log reaches a central Loki",
                    "add central.logs: {url: https://loki.example/loki/api/v1/push}, "
                    + one_machine,
                    at_key=True,
                )
            raw = {"url": "http://localhost:3100/loki/api/v1/push"}
        backend = raw.get("backend", "loki")
        url = raw["url"]
        if backend == "victorialogs":
            base = url.rstrip("/")
            if re.search(r"/insert/", base):
                self.error(
                    ("central", key, "url"),
                    "for VictoriaLogs give its base URL; flobs derives the /insert paths",
                    f"write {base.split('/insert/')[0]}",
                )
            query = raw.get("query_url") or base
            # VictoriaLogs parses a JSON line into fields; `msg` is logrus' message.
            push = f"{base}/insert/loki/api/v1/push?_msg_field=msg"
            if raw.get("tenant") and not re.fullmatch(r"[0-9]+(:[0-9]+)?", raw["tenant"]):
                self.error(
                    ("central", key, "tenant"),
                    "VictoriaLogs tenants are numbers `AccountID[:ProjectID]`, "
                    f"not {raw['tenant']!r}",
                    "write it like 12 or 12:3",
                )
        else:
            push = url
            query = raw.get("query_url") or re.sub(r"/loki/api/v1/push/?$", "", url)
        auth = _file_auth(raw)
        self._check_basic_auth(auth, ("central", key, "basic_auth", "username"))
        return LogStore(backend, push, query, raw.get("tenant"), auth)

    def _traces(self, c: dict[str, Any], single_host: bool, one_machine: str) -> Traces:
        tr = c.get("traces") or {"otlp_endpoint": "localhost:4317"}
        if "traces" not in c and not single_host:
            self.error(
                ("central",),
                "central.traces is not set: every host's collector would export traces to "
                "its own localhost:4317, so no trace reaches a central store",
                "add central.traces: {otlp_endpoint: tempo.example:4317}, " + one_machine,
                at_key=True,
            )
        backend = tr.get("backend", "tempo")
        otlp_host = re.sub(r"^[a-z]+://", "", tr["otlp_endpoint"]).rsplit(":", 1)[0]
        query_port = 16686 if backend == "jaeger" else 3200
        traces = Traces(
            backend=backend,
            otlp_endpoint=tr["otlp_endpoint"],
            insecure=tr.get("insecure", False),
            auth=_file_auth(tr),
            headers_from_env=tuple(sorted((tr.get("headers_from_env") or {}).items())),
            query_url=tr.get("query_url") or f"http://{otlp_host}:{query_port}",
        )
        for header in dict(traces.headers_from_env):
            if header.lower() in ("authorization",) and traces.insecure:
                self.warn(
                    ("central", "traces", "headers_from_env", header),
                    "credentials sent over plaintext OTLP (traces.insecure is true)",
                    "turn insecure off and give a ca_file",
                )
        if traces.insecure and (traces.auth.bearer_token_file or traces.auth.username):
            # bearertokenauth and basicauth both return RequireTransportSecurity() true:
            # the collector refuses to start ("grpc: the credentials require transport
            # level security").
            kind = "bearer_token_file" if traces.auth.bearer_token_file else "basic_auth"
            self.error(
                ("central", "traces", "insecure"),
                f"insecure: true cannot carry {kind}: the collector refuses to start "
                "(grpc: the credentials require transport level security)",
                "remove insecure (TLS is verified; give a ca_file for a private CA), "
                "or drop the credentials",
            )
        self._check_basic_auth(traces.auth, ("central", "traces", "basic_auth", "username"))
        return traces

    def _check_basic_auth(self, auth: FileAuth, path: DocPath) -> None:
        if auth.username and ":" in auth.username:
            # RFC 7617: the user-id cannot contain a colon; the collector's basicauth
            # refuses such a name at start, other clients send a pair the server splits wrongly.
            self.error(
                path,
                "a basic-auth user name cannot contain `:`",
                "the server splits user:password at the first colon; pick another name",
            )

    def _check_vmalert_values(self, c: dict[str, Any]) -> None:
        """The client settings vmalert gets as flags: one per line in central/vmalert.args,
        one per unit line (LoadCredential=) in flobs-vmalert.service."""
        keys = (
            ("bearer_token_file",),
            ("basic_auth", "username"),
            ("basic_auth", "password_file"),
            ("ca_file",),
            ("cert_file",),
            ("key_file",),
        )
        for section in (("prometheus", "remote_write"), ("alertmanager",)):
            raw: Any = c
            for part in section:
                raw = raw.get(part) or {}
            for key in keys:
                value = raw
                for part in key:
                    value = value.get(part) if isinstance(value, dict) else None
                if isinstance(value, str) and ("\n" in value or "\r" in value):
                    self.error(
                        ("central", *section, *key),
                        "a line break here cannot reach vmalert: its flags are one per "
                        "line (central/vmalert.args, flobs-vmalert.service)",
                        "use a path and name without line breaks",
                    )

    def _alertmanager(self, a: dict[str, Any], hosts: Sequence[Host]) -> Alertmanager:
        """``central.alertmanager``: external URLs, or receivers and routes to generate."""
        where: DocPath = ("central", "alertmanager")
        listen = parse_endpoint(a.get("listen", "127.0.0.1:9093"))
        version = a.get("version", "0.25")
        auth = _file_auth(a)
        if auth.insecure_skip_verify:
            self.warn(
                (*where, "insecure_skip_verify"),
                "TLS verification is off: anyone on the path can read and change this traffic",
                "give a ca_file instead and remove insecure_skip_verify",
            )
        receivers: list[Receiver] = []
        seen: dict[str, int] = {}
        for i, r in enumerate(a.get("receivers") or ()):
            if r["name"] in seen:
                self.error(
                    (*where, "receivers", i, "name"),
                    f"duplicate receiver name `{r['name']}`",
                    f"also used by $.central.alertmanager.receivers[{seen[r['name']]}]",
                )
            seen.setdefault(r["name"], i)
            integrations: list[Integration] = []
            for kind in ("webhook", "email", "slack", "pagerduty", "opsgenie"):
                for j, settings in enumerate(r.get(kind) or ()):
                    for key in settings:
                        since = ALERTMANAGER_KEY_SINCE.get((kind, key))
                        if since and not _version_at_least(version, since):
                            self.error(
                                (*where, "receivers", i, kind, j, key),
                                f"`{key}` needs Alertmanager {since} or newer "
                                f"(central.alertmanager.version is {version})",
                                "raise central.alertmanager.version, or use another key",
                                at_key=True,
                            )
                    integrations.append(Integration(kind, tuple(sorted(settings.items()))))
            receivers.append(Receiver(r["name"], tuple(integrations)))
        generated = bool(receivers)
        if not generated and not a.get("urls"):
            self.error(
                where,
                "central.alertmanager needs either `urls` (Alertmanagers you run) "
                "or `receivers` (flobs generates central/alertmanager.yml)",
                "for example receivers: [{name: oncall, webhook: [{url: https://…}]}]",
            )
        default = a.get("default_receiver") or (receivers[0].name if receivers else "")
        if generated and default not in seen:
            self.error(
                (*where, "default_receiver"),
                f"unknown receiver `{default}`",
                f"known: {', '.join(sorted(seen))}",
            )
        label_names = {k for h in hosts for k, _ in h.labels}
        routes: list[AlertRoute] = []
        for i, r in enumerate(a.get("routes") or ()):
            if r["receiver"] not in seen:
                self.error(
                    (*where, "routes", i, "receiver"),
                    f"unknown receiver `{r['receiver']}`",
                    f"known: {', '.join(sorted(seen)) or 'none'}",
                )
            match = r.get("match") or {}
            by_host = {k: v for k, v in match.items() if k in label_names}
            selected: tuple[str, ...] | None = None
            if by_host:
                selected = tuple(
                    sorted(
                        h.name
                        for h in hosts
                        if all(dict(h.labels).get(k) == v for k, v in by_host.items())
                    )
                )
                if not selected:
                    self.warn(
                        (*where, "routes", i, "match"),
                        "no inventory host carries "
                        + ", ".join(f"{k}={v}" for k, v in sorted(by_host.items()))
                        + ": this route only ever sees alerts without a host",
                        "check the label values against the hosts' labels",
                    )
            routes.append(
                AlertRoute(
                    receiver=r["receiver"],
                    match=tuple(sorted((k, v) for k, v in match.items() if k not in by_host)),
                    host_labels=tuple(sorted(by_host.items())),
                    hosts=selected,
                    continue_=bool(r.get("continue", False)),
                    group_by=tuple(r["group_by"]) if "group_by" in r else None,
                    repeat_interval=r.get("repeat_interval"),
                )
            )
        cluster = a.get("cluster") or {}
        if cluster and not generated:
            self.error(
                (*where, "cluster"),
                "cluster configures the generated Alertmanager, and there is none: "
                "urls names Alertmanagers you run",
                "set up gossip of your own Alertmanagers where you run them, and remove cluster",
                at_key=True,
            )
        if generated:
            reach = Endpoint("127.0.0.1" if listen.is_wildcard else listen.host, listen.port)
            url = a.get("url") or f"http://{reach}"
            urls: tuple[str, ...] = (url,)
        else:
            urls = tuple(a.get("urls") or ())
        for k, u in enumerate(urls):
            if (
                urlsplit(u).scheme == "http"
                and not _is_local_url(u)
                and (auth.bearer_token_file or auth.username)
            ):
                self.warn(
                    (*where, "urls", k) if not generated else (*where, "url"),
                    "Alertmanager URL is plain http; its credentials would cross the network "
                    "unencrypted",
                    "use https:// and a ca_file",
                )
        return Alertmanager(
            urls=urls,
            generated=generated,
            listen=listen,
            version=version,
            auth=auth,
            group_by=tuple(a.get("group_by", ("alertname", "cluster", "host"))),
            group_wait=a.get("group_wait", "30s"),
            group_interval=a.get("group_interval", "5m"),
            repeat_interval=a.get("repeat_interval", "4h"),
            resolve_timeout=a.get("resolve_timeout", "5m"),
            receivers=tuple(receivers),
            default_receiver=default,
            routes=tuple(routes),
            inhibit=bool(a.get("inhibit", True)),
            vmalert_listen=parse_endpoint(a.get("vmalert_listen", "127.0.0.1:8880")),
            cluster_listen=parse_endpoint(cluster.get("listen", "0.0.0.0:9094")),
            cluster_peers=tuple(cluster.get("peers", ())),
        )

    def _check_selectors(self, selectors: tuple[str, ...]) -> None:
        import promql_parser

        for i, sel in enumerate(selectors):
            try:
                expr = promql_parser.parse(sel)
            except ValueError as err:
                self.error(
                    ("central", "prometheus", "extra_match", i),
                    f"not a PromQL series selector: {err}",
                    'write it like up{job="node"} or {__name__=~"node_load.*"}',
                )
                continue
            if type(expr).__name__ != "VectorSelector":
                self.error(
                    ("central", "prometheus", "extra_match", i),
                    "federation match[] takes a series selector, not an expression",
                    'write it like node_load1 or {__name__=~"node_load.*"}',
                )
            elif re.search(r"__name__\s*=~\s*\"\.[*+]\"", sel):
                self.error(
                    ("central", "prometheus", "extra_match", i),
                    "federating every series defeats the local pre-aggregation",
                    "list the metric names the centre needs",
                )

    def _check_fleet(self, fleet: Fleet) -> None:
        from flobs.artifacts.ansible import CENTRAL_HOST

        for host in fleet.hosts:
            if host.name == CENTRAL_HOST:
                self.error(
                    ("hosts", host.index, "name"),
                    f"host name `{CENTRAL_HOST}` is the centre's name in "
                    "deploy/ansible/inventory.yml",
                    "rename the host",
                )
        self._check_collector_auth(fleet)
        if fleet.central.prometheus.mode != "federation":
            return
        self._check_federation_auth(fleet)
        for host in fleet.hosts:
            listen = host.vars.local_prometheus.listen
            if not listen.is_wildcard and listen.host not in (host.address,):
                self.error(
                    ("hosts", host.index, "address"),
                    f"host {host.name}: the central scrapes {host.federation_target}, "
                    f"but the local Prometheus listens on {listen} only",
                    "make local_prometheus.listen 0.0.0.0:<port> or <address>:<port>, "
                    "or use central.prometheus.mode: remote_write",
                )

    def _check_federation_auth(self, fleet: Fleet) -> None:
        """The centre's one federate job must speak what every host's listener expects."""
        auth = fleet.central.prometheus.federation_auth
        where: DocPath = ("central", "prometheus", "federation")
        tls_hosts = [h for h in fleet.hosts if _web(h).tls]
        plain_hosts = [h for h in fleet.hosts if not _web(h).tls]
        if tls_hosts and plain_hosts:
            self.error(
                ("hosts", plain_hosts[0].index, "name"),
                f"host {plain_hosts[0].name} serves plain HTTP but {tls_hosts[0].name} serves "
                "TLS; the centre federates every host with one scheme",
                "set vars.local_prometheus.web.tls for every host (in `defaults`)",
            )
        for host in fleet.hosts:
            users = dict(_web(host).basic_auth_users)
            if users and auth.username is None:
                self.error(
                    ("hosts", host.index, "name"),
                    f"host {host.name}: its local Prometheus requires basic auth, but the "
                    "centre's federate job sends none",
                    "set central.prometheus.federation.basic_auth {username, password_file}",
                )
                break
            if users and auth.username not in users:
                self.error(
                    (*where, "basic_auth", "username"),
                    f"host {host.name} has no basic-auth user `{auth.username}` "
                    f"(it has {', '.join(sorted(users))})",
                    "add it to vars.local_prometheus.web.basic_auth_users",
                )
                break
        if auth.username and plain_hosts and not tls_hosts:
            local = all(_is_local_url(f"http://{h.address}") for h in plain_hosts)
            if not local:
                self.warn(
                    (*where, "basic_auth"),
                    "the federate job sends a basic-auth password over plain http; it "
                    "would cross the network unencrypted",
                    "serve TLS on the hosts (vars.local_prometheus.web.tls) and set "
                    "central.prometheus.federation.ca_file",
                )
        for key in ("ca_file", "server_name", "cert_file", "key_file"):
            if getattr(auth, key) and not tls_hosts:
                self.warn(
                    (*where, key),
                    f"federation.{key} is set but no host serves TLS, so it is not used",
                    "set vars.local_prometheus.web.tls, or remove it",
                )

    def _check_collector_auth(self, fleet: Fleet) -> None:
        # basicauth's client `password_file` is what keeps the secret out of YAML parsing;
        # 0.158 is the oldest release it was checked in (0.140 lacks it).
        c = fleet.central
        for host in fleet.hosts:
            o = host.vars.otelcol
            uses_basic = c.traces.auth.username or (o.logs_pipeline and c.logs.auth.username)
            if o.enabled and uses_basic and o.version < (0, 158, 0):
                self.error(
                    ("hosts", host.index, "name"),
                    f"host {host.name}: basic auth needs otelcol 0.158 or later "
                    f"(basicauth password_file); the host runs {'.'.join(map(str, o.version))}",
                    "upgrade the collector or use bearer_token_file",
                )


def _web(host: Host) -> WebConfig:
    return host.vars.local_prometheus.web or WebConfig()


def _target_endpoint(target: str) -> Endpoint | None:
    """A static target ``host:port`` as an endpoint; None without an explicit host and port."""
    endpoint = Endpoint.parse(target)
    return endpoint if endpoint is not None and endpoint.host else None


def _overlap(a: Endpoint, b: Endpoint) -> bool:
    """Two listeners on one port clash unless both are bound to different specific IPs."""
    if a.is_wildcard or b.is_wildcard:
        return True
    norm = {"localhost": "127.0.0.1", "ip6-localhost": "::1"}
    return norm.get(a.host, a.host) == norm.get(b.host, b.host)


def _file_auth(raw: Mapping[str, Any]) -> FileAuth:
    basic = raw.get("basic_auth") or {}
    return FileAuth(
        bearer_token_file=raw.get("bearer_token_file"),
        username=basic.get("username"),
        password_file=basic.get("password_file"),
        ca_file=raw.get("ca_file"),
        cert_file=raw.get("cert_file"),
        key_file=raw.get("key_file"),
        insecure_skip_verify=bool(raw.get("insecure_skip_verify", False)),
        server_name=raw.get("server_name"),
    )


def _version_at_least(version: str, minimum: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    return parts(version) >= parts(minimum)


def _is_local_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _dig(values: Mapping[str, Any], path: VarPath) -> Any:
    node: Any = values
    for key in path:
        node = node[key]
    return node


def _has_error(problems: list[Problem]) -> bool:
    return any(p.severity is Severity.ERROR for p in problems)


def build_fleet(
    doc: dict[str, Any],
    source: Source,
    *,
    file_name: str,
    digest: str,
    base_dir: Path | None = None,
) -> tuple[Fleet, list[Problem]]:
    """``base_dir``: where the inventory lives, for the files it names (``extensions``,
    bcrypt hashes); relative paths resolve against it (the working directory if None)."""
    builder = _Builder(doc, source, base_dir)
    fleet = builder.build(file_name, digest)
    return fleet, builder.problems


def _unsupported_prometheus(value: str) -> tuple[str, str]:
    return (
        f"Prometheus {value} is not supported: flobs writes for {versions.PROMETHEUS_MIN} "
        f"up to the latest 3.x",
        f"upgrade the hosts to {versions.PROMETHEUS_MIN} or newer (3.13 is the current LTS), "
        "or leave the key out to get the 3.13 default",
    )
