"""Across artifacts: what no single-file tool can see, because flobs wrote all of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from flobs import closure
from flobs.artifacts.central import target_file_name
from flobs.checks import Check, CheckContext, FactSource, FileCheck, fact, register
from flobs.checks import kinds as k
from flobs.checks.dashboards import datasource_refs, provisioned_datasources
from flobs.model import LOGS_DATASOURCE_TYPES, TRACES_DATASOURCE_TYPES, Endpoint
from flobs.problems import Problem

# Datasource types Grafana uses for what the inventory calls prometheus/loki/tempo.


def _targets(ctx: CheckContext) -> Iterator[tuple[str, int, str, list[str]]]:
    """(file, index, host label, targets) for every central file_sd entry."""
    for path in k.files(ctx, k.TARGETS):
        doc = k.data(ctx, path)
        for i, entry in enumerate(doc if isinstance(doc, list) else []):
            if not isinstance(entry, dict):
                continue
            labels = entry.get("labels")
            labels = labels if isinstance(labels, dict) else {}
            targets = [str(t) for t in k.seq(entry.get("targets"))]
            yield path, i, str(labels.get("host", "")), targets


@register
class HostsMatchTargets(Check):
    """Every inventory host is a central target and has its own files; nothing else is.

    Why: a host missing from `central/targets/*.json` is never federated, so its
    alerts never fire; a target (or `hosts/<name>/`) for a host the inventory no longer
    lists is stale and alerts as down forever. The target address must be the host's
    `address` and local Prometheus port. Example: a host removed from the inventory
    whose entry is still in `central/targets/eu1-a.json`.
    """

    ID = "xref-hosts"
    TITLE = "inventory hosts ↔ central targets"
    NEEDS_INVENTORY = True
    FILES: ClassVar[tuple[str, ...]] = (k.TARGETS, k.HOST_PROMETHEUS)

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        assert ctx.fleet is not None
        hosts = {h.name: h for h in ctx.fleet.hosts}
        seen: set[str] = set()
        for path, i, name, targets in _targets(ctx):
            host = hosts.get(name)
            if host is None:
                yield ctx.problem(
                    self,
                    path,
                    f"target for host {name!r}, which is not in the inventory",
                    key_path=(i, "labels", "host"),
                    hint="run `flobs generate` to drop stale hosts",
                )
                continue
            if name in seen:
                yield ctx.problem(
                    self,
                    path,
                    f"host {name!r} is listed more than once",
                    key_path=(i, "labels", "host"),
                )
            seen.add(name)
            if targets != [host.federation_target]:
                yield ctx.problem(
                    self,
                    path,
                    f"host {name!r} is scraped at "
                    f"{', '.join(targets)} but the inventory says "
                    f"{host.federation_target}",
                    key_path=(i, "targets"),
                )
        for name in sorted(set(hosts) - seen):
            yield ctx.problem(
                self,
                # The file generate puts the host in: where the entry is missing.
                f"central/{target_file_name(hosts[name])}",
                f"inventory host {name!r} is in no "
                "central/targets/*.json file: the centre never federates it",
                hint="run `flobs generate`",
            )
        dirs = {k.host_of(p) for p in ctx.files if p.startswith("hosts/")}
        for name in sorted(d for d in dirs if d is not None and d not in hosts):
            yield ctx.problem(
                self,
                f"hosts/{name}",
                f"files for host {name!r}, which is not in the inventory",
                hint="run `flobs generate` to remove them",
            )
        for name in sorted(n for n in hosts if n not in dirs):
            yield ctx.problem(
                self,
                f"hosts/{name}",
                f"inventory host {name!r} has no generated files",
                hint="run `flobs generate`",
            )


@register
class MetricClosure(Check):
    """Every metric central rules and dashboards read is federated and produced on the hosts.

    Why: an alert on a series the centre never receives is silent forever, and a panel
    on a metric nobody produces is always empty; neither promtool nor Grafana can know.
    A metric must be matched by a federation `match[]` selector (or the remote_write
    keep rule) and come from a local scrape job or recording rule. Example: an alert on
    `node_load1`, which hosts scrape but do not federate.
    """

    ID = "xref-closure"
    TITLE = "metric closure: read ⇒ federated ⇒ produced"
    FILES: ClassVar[tuple[str, ...]] = (k.CENTRAL_RULES, *k.DASHBOARDS)

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        hosts = closure.HostSide()
        central: dict[str, Any] = {}
        unreadable: list[str] = []
        for path in ctx.files:
            if closure.is_host_config(path) or closure.is_host_rules(path):
                facts = fact(ctx, ClosureFacts, path)
                if facts is None:
                    unreadable.append(path)
                else:
                    hosts.add(facts)
            elif closure.is_central_rules(path) or closure.is_dashboard(path):
                central[path] = self._doc(ctx, path, unreadable)
        config = self._doc(ctx, closure.CENTRAL_CONFIG, unreadable)
        manifest = k.data(ctx, k.MANIFEST) if k.MANIFEST in ctx.index else None
        if unreadable:
            # The closure needs every file; one that does not parse is file-parses' error,
            # so validate fails anyway.
            ctx.notes.append(
                f"xref-closure skipped: a generated file could not be read ({unreadable[0]})"
            )
            return
        try:
            gaps = closure.gaps(hosts, central, config, manifest)
        except ValueError as err:
            # A hand-edited federation selector that is not PromQL: promql-parse reports
            # it. Any other exception is a bug: exit 3, loudly.
            ctx.notes.append(f"xref-closure skipped: a generated file could not be read ({err})")
            return
        for gap in gaps:
            yield ctx.problem(
                self,
                gap.file,
                f"{gap.metric} is {gap.reason} (read by {gap.where})"
                if gap.where
                else f"{gap.metric} is {gap.reason}",
                hint=_CLOSURE_HINTS.get(str(gap.reason)),
            )

    @staticmethod
    def _doc(ctx: CheckContext, path: str, unreadable: list[str]) -> Any:
        if path not in ctx.index:
            return None
        parsed = ctx.parse(path)
        if parsed.error is not None:
            unreadable.append(path)
        return parsed.data


class ClosureFacts(FactSource):
    """A host's scrape jobs and keep regexes (prometheus.yml) or recorded names (rules);
    None when the file does not parse."""

    ID = "facts:closure"
    FILES = (k.HOST_PROMETHEUS, "hosts/*/rules/*.yml", "hosts/*/rules/*.yaml")

    def extract(self, ctx: CheckContext, path: str) -> dict[str, list[str]] | None:
        parsed = ctx.parse(path)
        if parsed.error is not None:
            return None
        if closure.is_host_config(path):
            return closure.config_facts(parsed.data)
        return closure.rules_facts(parsed.data)


MetricClosure.FACTS = (ClosureFacts,)


_CLOSURE_HINTS = {
    "not federated": "the centre only receives series matched by the federation match[] "
    "(flobs.artifacts.series); read a host:/microvm: recording rule instead",
    "not produced": "no host scrape job or local recording rule produces it",
}


# Inventory listeners the local Prometheus scrapes: the file already shows them.
SCRAPED_OWNERS = frozenset(
    {
        "flintlockd.metrics_endpoint",
        "flintlock_metrics.endpoint",
        "node_exporter.endpoint",
        "process_exporter.endpoint",
        "containerd.metrics_endpoint",
        "local_prometheus.listen",
        "logs.listen",
        "otelcol.metrics_endpoint",
        "otelcol.spanmetrics_endpoint",
    }
)


def _same_socket(a: Endpoint, b: Endpoint) -> bool:
    """Two listeners clash when they share a port on an overlapping address."""
    if a.port != b.port:
        return False
    if a.is_wildcard or b.is_wildcard:
        return True

    def norm(host: str) -> str:
        return "127.0.0.1" if host.lower() == "localhost" else host

    return norm(a.host) == norm(b.host)


def _parse_endpoint(text: str) -> Endpoint | None:
    return Endpoint.parse(text)


@register
class DistinctPorts(FileCheck):
    """Each host's listeners use distinct ports.

    Why: two processes cannot bind one port; the second fails to start, and its scrape
    job then silently scrapes the first one. flintlockd's gRPC default 9090 is also
    Prometheus' default (flintlock-facts.md). Listeners come from each host's scrape
    targets and, with `-i`, the inventory (flintlockd gRPC/HTTP, OTel receivers).
    Example: node_exporter moved to 9256, process-exporter's port.
    """

    ID = "xref-ports"
    USES_INVENTORY = True
    TITLE = "no port collisions on a host"
    FILES: ClassVar[tuple[str, ...]] = (k.HOST_PROMETHEUS,)

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        doc = k.data(ctx, path)
        listeners: list[tuple[str, Endpoint, tuple[str | int, ...]]] = []
        for i, job in enumerate(k.seq(k.get(doc, "scrape_configs"))):
            if not isinstance(job, dict):
                continue
            for j, sc in enumerate(k.seq(job.get("static_configs"))):
                for m, target in enumerate(k.seq(k.get(sc, "targets"))):
                    ep = _parse_endpoint(str(target))
                    if ep is not None:
                        listeners.append(
                            (
                                f"job {job.get('job_name')!r}",
                                ep,
                                ("scrape_configs", i, "static_configs", j, "targets", m),
                            )
                        )
        host = k.inventory_host(ctx, path)
        if host is not None:
            for listener in host.listeners():
                if listener.owner in SCRAPED_OWNERS:
                    continue  # already seen as a scrape target in the file
                listeners.append((f"inventory {listener.owner}", listener.endpoint, ()))
        yield from self._collisions(ctx, path, listeners)

    def _collisions(
        self,
        ctx: CheckContext,
        path: str,
        listeners: list[tuple[str, Endpoint, tuple[str | int, ...]]],
    ) -> Iterator[Problem]:
        for n, (owner, ep, key_path) in enumerate(listeners):
            for other_owner, other_ep, _ in listeners[:n]:
                if _same_socket(ep, other_ep):
                    yield ctx.problem(
                        self,
                        path,
                        f"{owner} on {ep} collides with {other_owner} on {other_ep}",
                        key_path=key_path,
                        hint="give each process on the host its own port in the inventory",
                    )
                    break


@register
class DatasourcesAgree(Check):
    """Provisioning, dashboards and the inventory agree on datasource uids.

    Why: dashboards and correlations (logs → traces, exemplars → traces) link by uid;
    a uid provisioned twice, provisioned with the wrong type, or different from the
    inventory's `central.grafana.*.uid` breaks those links. Example: the Loki datasource
    provisioned as `loki` while the inventory and the Tempo correlation say `flobs-loki`.
    """

    ID = "xref-datasources"
    TITLE = "datasource uids agree"
    FILES: ClassVar[tuple[str, ...]] = (*k.DATASOURCES, *k.DASHBOARDS)

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        files = k.files(ctx, k.DATASOURCES)
        if not files:
            if k.files(ctx, k.DASHBOARDS):
                yield ctx.problem(
                    self,
                    "grafana/provisioning/datasources",
                    "dashboards are generated but no datasource is provisioned",
                )
            return
        seen: dict[str, str] = {}
        for path in files:
            doc = k.data(ctx, path)
            for i, ds in enumerate(k.seq(k.get(doc, "datasources"))):
                if not isinstance(ds, dict) or not isinstance(ds.get("uid"), str):
                    continue
                uid = ds["uid"]
                if uid in seen:
                    yield ctx.problem(
                        self,
                        path,
                        f"datasource uid {uid!r} is provisioned twice (also in {seen[uid]})",
                        key_path=("datasources", i, "uid"),
                    )
                seen.setdefault(uid, path)
                yield from self._correlations(
                    ctx, path, ("datasources", i, "jsonData"), ds.get("jsonData")
                )
        known = provisioned_datasources(ctx)
        if ctx.fleet is not None:
            g = ctx.fleet.central.grafana
            c = ctx.fleet.central
            wanted = (
                ("prometheus", g.prometheus, "prometheus"),
                ("logs", g.logs, LOGS_DATASOURCE_TYPES[c.logs.backend]),
                ("traces", g.traces, TRACES_DATASOURCE_TYPES[c.traces.backend]),
            )
            for kind, ref, ds_type in wanted:
                have = known.get(ref.uid)
                if have is None:
                    yield ctx.problem(
                        self,
                        files[0],
                        f"the inventory's {kind} datasource uid {ref.uid!r} is not provisioned",
                    )
                elif have[0] != ds_type:
                    yield ctx.problem(
                        self,
                        have[1],
                        f"datasource {ref.uid!r} is provisioned as "
                        f"type {have[0]!r}; the inventory uses it for {kind}",
                    )
        # Dashboards' Prometheus queries must go to a Prometheus datasource.
        for path in k.files(ctx, k.DASHBOARDS):
            for key_path, uid in datasource_refs(k.data(ctx, path)):
                have = known.get(uid)
                if have is None:
                    continue  # dash-datasource reports unknown uids
                ref = _ref_at(k.data(ctx, path), key_path)
                want = ref.get("type") if isinstance(ref, dict) else None
                if isinstance(want, str) and want != have[0]:
                    yield ctx.problem(
                        self,
                        path,
                        f"datasource {uid!r} is referenced as type "
                        f"{want!r} but provisioned as {have[0]!r}",
                        key_path=key_path,
                    )

    def _correlations(
        self, ctx: CheckContext, path: str, base: tuple[str | int, ...], json_data: Any
    ) -> Iterator[Problem]:
        uids = set(provisioned_datasources(ctx))
        for key_path, uid in _uid_fields(json_data, base):
            if uid not in uids:
                yield ctx.problem(
                    self,
                    path,
                    f"correlation points at datasource uid {uid!r}, which is not provisioned",
                    key_path=key_path,
                )


def _uid_fields(
    node: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasourceUid" and isinstance(value, str):
                yield (*path, key), value
            else:
                yield from _uid_fields(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _uid_fields(value, (*path, i))


def _ref_at(doc: Any, key_path: tuple[str | int, ...]) -> Any:
    node = doc
    for part in key_path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node
