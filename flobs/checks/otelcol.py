"""Checks for the generated OpenTelemetry Collector configs (``otelcol.yaml``).

The collector refuses to start when a pipeline names an undefined component, and
silently does nothing useful with a component that no pipeline uses; processor
order decides whether the memory limiter protects anything (grafana-api.md:
``memory_limiter`` first, samplers next, ``batch`` last).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flobs.checks import Check, CheckContext, FileCheck, register
from flobs.checks import kinds as k
from flobs.checks.logs import host_of, schema_problems, tool_problems
from flobs.model import Endpoint
from flobs.problems import Problem, Severity

OTELCOL_GLOB = "hosts/*/otelcol.yaml"
KINDS = ("receivers", "processors", "exporters")


def _doc(ctx: CheckContext, path: str) -> dict[str, Any] | None:
    data = ctx.parse(path).data
    return data if isinstance(data, dict) else None


def _pipelines(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pipelines = k.get(doc.get("service"), "pipelines")
    if not isinstance(pipelines, dict):
        return {}
    return {name: v for name, v in pipelines.items() if isinstance(v, dict)}


def _names(value: Any) -> list[tuple[int, str]]:
    """(index, name) of the component names in a list; other shapes and items are
    skipped here, since otelcol-schema reports them."""
    return [(i, c) for i, c in enumerate(k.seq(value)) if isinstance(c, str)]


def _service(doc: dict[str, Any]) -> dict[str, Any]:
    service = doc.get("service")
    return service if isinstance(service, dict) else {}


def _defined(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    section = doc.get(kind)
    return section if isinstance(section, dict) else {}


@register
class OtelcolSchema(FileCheck):
    """otelcol.yaml matches flobs' schema (schemas/otelcol.schema.json).

    Strict on the components and keys flobs writes. It also pins that exporter
    headers are `${env:VAR}` references, never inline values.
    """

    ID = "otelcol-schema"
    FILES = (k.OTELCOL,)
    TITLE = "otelcol.yaml matches its schema"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        yield from schema_problems(self, ctx, "otelcol.schema.json", path)


@register
class OtelcolReferences(FileCheck):
    """Every component a pipeline or the service names is defined.

    Covers pipeline receivers/processors/exporters, `service.extensions`, an
    exporter's `auth.authenticator` and a receiver's `storage` extension.
    Example finding: `processors: [memory_limiter, batch]` with no `batch:` defined.
    """

    ID = "otelcol-references"
    FILES = (k.OTELCOL,)
    TITLE = "OTel pipelines reference defined components"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        doc = _doc(ctx, path)
        if doc is None:
            return  # otelcol-schema reports anything else
        connectors = _defined(doc, "connectors")
        for name, pipeline in _pipelines(doc).items():
            for kind in KINDS:
                defined = _defined(doc, kind)
                if kind != "processors":  # a connector ends one pipeline, starts another
                    defined = {**defined, **connectors}
                for i, component in _names(pipeline.get(kind)):
                    if component not in defined:
                        yield ctx.problem(
                            self,
                            path,
                            f"pipeline {name} uses {kind[:-1]} `{component}`, "
                            f"which is not defined under {kind}",
                            hint=f"define it under {kind}: or remove it from the pipeline",
                            key_path=("service", "pipelines", name, kind, i),
                        )
        extensions = _defined(doc, "extensions")
        service = _service(doc)
        enabled = [ext for _, ext in _names(service.get("extensions"))]
        for i, ext in _names(service.get("extensions")):
            if ext not in extensions:
                yield ctx.problem(
                    self,
                    path,
                    f"service enables extension `{ext}`, which is not defined",
                    key_path=("service", "extensions", i),
                )
        for kind in ("exporters", "receivers"):
            for cname, body in _defined(doc, kind).items():
                if not isinstance(body, dict):
                    continue
                auth = body.get("auth")
                refs: list[tuple[str, tuple[str | int, ...]]] = []
                authenticator = k.get(auth, "authenticator")
                if isinstance(authenticator, str) and authenticator:
                    refs.append((authenticator, (kind, cname, "auth", "authenticator")))
                if isinstance(body.get("storage"), str) and body["storage"]:
                    refs.append((body["storage"], (kind, cname, "storage")))
                for ext, key_path in refs:
                    if ext not in extensions or ext not in enabled:
                        yield ctx.problem(
                            self,
                            path,
                            f"{kind[:-1]} `{cname}` needs extension `{ext}`, "
                            "which is not defined and enabled",
                            key_path=key_path,
                            hint="define it under extensions: and list it in service.extensions",
                        )


@register
class OtelcolUnused(FileCheck):
    """Every defined receiver, processor, exporter and extension is used.

    A receiver no pipeline uses still opens its port but its data goes nowhere; an
    unused exporter hides a missing pipeline. Usually a hand edit or a bug.
    """

    ID = "otelcol-unused"
    FILES = (k.OTELCOL,)
    TITLE = "OTel components are all used"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        doc = _doc(ctx, path)
        if doc is None:
            return  # otelcol-schema reports anything else
        pipelines = _pipelines(doc)
        for kind in (*KINDS, "connectors"):
            roles = ("receivers", "exporters") if kind == "connectors" else (kind,)
            used = {c for p in pipelines.values() for r in roles for _, c in _names(p.get(r))}
            for component in _defined(doc, kind):
                if component not in used:
                    yield ctx.problem(
                        self,
                        path,
                        f"{kind[:-1]} `{component}` is defined but no pipeline uses it",
                        key_path=(kind, component),
                        hint="add it to a pipeline or remove it",
                    )
        service = _service(doc)
        enabled = {ext for _, ext in _names(service.get("extensions"))}
        for ext in _defined(doc, "extensions"):
            if ext not in enabled:
                yield ctx.problem(
                    self,
                    path,
                    f"extension `{ext}` is defined but not listed in service.extensions",
                    key_path=("extensions", ext),
                    hint="list it in service.extensions or remove it",
                )


@register
class OtelcolProcessorOrder(FileCheck):
    """In every pipeline `memory_limiter` is the first processor and `batch` the last.

    The memory limiter can only refuse data before anything else holds it in memory;
    batching before sampling or attribute changes would batch spans that are then
    dropped or changed. From collector v0.160 batching belongs in the exporter
    (`sending_queue.batch`, the `batch` processor is deprecated): a pipeline without
    a `batch` processor must have every exporter batch in its queue. Pipelines that
    only feed a connector or a Prometheus (pull) exporter send nothing: no batching.
    """

    ID = "otelcol-processor-order"
    FILES = (k.OTELCOL,)
    TITLE = "memory_limiter first, batch last"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        doc = _doc(ctx, path)
        if doc is None:
            return  # otelcol-schema reports anything else
        for name, pipeline in _pipelines(doc).items():
            procs = [p.split("/")[0] for _, p in _names(pipeline.get("processors"))]
            where = ("service", "pipelines", name, "processors")
            if not procs or procs[0] != "memory_limiter":
                yield ctx.problem(
                    self,
                    path,
                    f"pipeline {name}: the first processor is "
                    f"{procs[0] if procs else 'missing'}, not memory_limiter",
                    hint="put memory_limiter first",
                    key_path=where,
                )
            exporters = _defined(doc, "exporters")
            connectors = _defined(doc, "connectors")
            # Names only: a list or map in their place is otelcol-schema's finding.
            sends = [e for _, e in _names(pipeline.get("exporters"))]
            if sends and all(e.split("/")[0] == "prometheus" or e in connectors for e in sends):
                # A pull exporter serves what it holds and a connector hands spans
                # to another pipeline in memory: nothing to batch.
                continue
            queue_batched = bool(sends) and all(
                e in connectors
                or e.split("/")[0] == "prometheus"
                or (
                    isinstance(exporters.get(e), dict)
                    and isinstance(exporters[e].get("sending_queue"), dict)
                    and isinstance(exporters[e]["sending_queue"].get("batch"), dict)
                )
                for e in sends
            )
            if "batch" not in procs and queue_batched:
                continue
            if not procs or procs[-1] != "batch":
                yield ctx.problem(
                    self,
                    path,
                    f"pipeline {name}: the last processor is "
                    f"{procs[-1] if procs else 'missing'}, not batch",
                    hint="put batch last (or, from collector v0.160, batch in every "
                    "exporter's sending_queue)",
                    key_path=where,
                )


def listeners(doc: dict[str, Any]) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """Every address the collector listens on, with its YAML path."""
    for cname, body in _defined(doc, "receivers").items():
        protocols = k.get(body, "protocols")
        for proto, settings in protocols.items() if isinstance(protocols, dict) else ():
            if isinstance(settings, dict) and "endpoint" in settings:
                yield settings["endpoint"], ("receivers", cname, "protocols", proto, "endpoint")
    for kind in ("extensions", "exporters"):
        for ename, body in _defined(doc, kind).items():
            if kind == "exporters" and ename.split("/")[0] != "prometheus":
                continue  # other exporters' endpoints are where they send, not listen
            if isinstance(body, dict) and isinstance(body.get("endpoint"), str):
                yield body["endpoint"], (kind, ename, "endpoint")
    service = _service(doc)
    readers = k.seq(k.get(k.get(service.get("telemetry"), "metrics"), "readers"))
    for i, reader in enumerate(readers):
        prom = k.get(k.get(k.get(reader, "pull"), "exporter"), "prometheus")
        if isinstance(prom, dict) and "host" in prom:
            yield (
                f"{prom['host']}:{prom.get('port', 0)}",
                (
                    "service",
                    "telemetry",
                    "metrics",
                    "readers",
                    i,
                    "pull",
                    "exporter",
                    "prometheus",
                    "host",
                ),
            )


def _endpoint_host(text: str) -> str:
    endpoint = Endpoint.parse(text)
    # Not host:port (an env reference, a typo): not shown to be loopback.
    return endpoint.host if endpoint is not None else text


@register
class OtelcolLoopback(FileCheck):
    """OTLP receivers, health_check and the collector's own metrics listen on loopback.

    Applications on the host reach the collector on localhost:4317/4318; nothing
    else needs it, and an open OTLP port accepts anyone's spans. Set
    vars.otelcol.allow_public: true to open it on purpose. Without -i INVENTORY a
    public listener is a warning.
    """

    ID = "otelcol-loopback"
    USES_INVENTORY = True
    FILES = (k.OTELCOL,)
    TITLE = "collector listens on loopback"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        doc = _doc(ctx, path)
        if doc is None:
            return  # otelcol-schema reports anything else
        host = host_of(ctx, path)
        if host is not None and host.vars.otelcol.allow_public:
            return
        for endpoint, key_path in listeners(doc):
            address = _endpoint_host(str(endpoint))
            if Endpoint(address, 0).is_loopback:
                continue
            yield ctx.problem(
                self,
                path,
                f"listens on {endpoint}, which is not loopback",
                hint="use 127.0.0.1 (the default) or set vars.otelcol.allow_public: true",
                key_path=key_path,
                severity=Severity.ERROR if host is not None else Severity.WARNING,
            )


@register
class OtelcolTool(Check):
    """`otelcol validate` accepts every otelcol.yaml (when otelcol or otelcol-contrib is installed).

    The configs use contrib components (resource, probabilistic_sampler, journald,
    filelog, bearertokenauth): a core `otelcol` build rejects them, so install
    otelcol-contrib.
    """

    ID = "otelcol-tool"
    FILES = (k.OTELCOL,)
    TOOL = "otelcol"
    TITLE = "otelcol validate"

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        yield from tool_problems(
            self, ctx, "otelcol", ctx.glob(OTELCOL_GLOB), ["validate", "--config"]
        )
