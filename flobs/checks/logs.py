"""Checks for the generated log-shipper configs (``promtail.yml`` and ``config.alloy``).

The rule that matters most: a Loki label must never take an unbounded value.
Every distinct label set is a stream with its own index entry and chunk; one label
from ``vmid`` (``namespace/name/uid``, flintlock-facts.md) or a trace id creates a
stream per microVM or per request, and Loki slows down and then refuses pushes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flobs.artifacts import promtail
from flobs.artifacts.alloy import AlloySyntaxError, Block, Ref, parse
from flobs.checks import Check, CheckContext, FileCheck, _body_key, kinds, register
from flobs.checks.structure import schema_errors
from flobs.errors import ToolFailure
from flobs.model import Endpoint, Host
from flobs.problems import Problem, Severity
from flobs.tools import MAX_WORKERS, find_tool
from flobs.yamlio import Path_

PROMTAIL_GLOB = "hosts/*/promtail.yml"
ALLOY_GLOB = "hosts/*/config.alloy"

# Fields a label may be extracted from: logrus' seven levels, flintlockd's few
# components (flintlock-facts.md).
# Spelled out rather than read from the generator, so the check stays independent of it.
BOUNDED_FIELDS = frozenset({"level", "component"})
# Relabel sources with few values on one host; the unit is pinned by the journal match.
BOUNDED_RELABEL_SOURCES = frozenset(
    {
        promtail.JOURNAL_UNIT_LABEL,
        "__journal__hostname",
        "__journal_priority",
        "__journal_priority_keyword",
        "__journal_syslog_identifier",
    }
)
# Fields known to be unbounded, named in messages so the reason is plain.
UNBOUNDED_FIELDS = frozenset(
    {
        "vmid",
        "trace_id",
        "span_id",
        "msg",
        "time",
        "uid",
        "name",
        "namespace",
        "error",
        "step",
        "stage",
        "__journal_message",
        "__journal__pid",
        "__journal__cursor",
    }
)


@dataclass(frozen=True)
class LabelSource:
    """Where one Loki label of a generated file gets its value."""

    label: str
    kind: str  # "constant" | "field" | "relabel"
    sources: tuple[str, ...]  # the field or relabel source labels (empty for constants)
    key_path: Path_  # YAML path (promtail) or () for Alloy
    line: int | None = None  # Alloy line

    @property
    def bounded(self) -> bool:
        if self.kind == "constant":
            return True
        if self.kind == "field":
            return all(s in BOUNDED_FIELDS for s in self.sources)
        return all(s in BOUNDED_RELABEL_SOURCES for s in self.sources)


def promtail_labels(doc: Any) -> list[LabelSource]:
    """Every label a ``promtail.yml`` can attach, and what it is made from.

    The file may be hand-edited into any shape: whatever is not the expected mapping
    or list is skipped here (``logs-schema`` reports it), never a crash.
    """
    out: list[LabelSource] = []
    for i, client in enumerate(kinds.seq(kinds.get(doc, "clients"))):
        for name in _names(kinds.get(client, "external_labels")):
            out.append(LabelSource(name, "constant", (), ("clients", i, "external_labels", name)))
    for j, job in enumerate(kinds.seq(kinds.get(doc, "scrape_configs"))):
        base: Path_ = ("scrape_configs", j)
        for name in _names(kinds.get(kinds.get(job, "journal"), "labels")):
            out.append(LabelSource(name, "constant", (), (*base, "journal", "labels", name)))
        for n, sc in enumerate(kinds.seq(kinds.get(job, "static_configs"))):
            for name in _names(kinds.get(sc, "labels")):
                if not name.startswith("__"):
                    out.append(
                        LabelSource(
                            name, "constant", (), (*base, "static_configs", n, "labels", name)
                        )
                    )
        for n, rule in enumerate(kinds.seq(kinds.get(job, "relabel_configs"))):
            target = kinds.get(rule, "target_label")
            sources = kinds.get(rule, "source_labels")
            if (
                isinstance(target, str)
                and target
                and not target.startswith("__")
                and kinds.get(rule, "action") in (None, "replace")
            ):
                out.append(
                    LabelSource(
                        target,
                        "relabel",
                        tuple(str(s) for s in kinds.seq(sources)),
                        (*base, "relabel_configs", n, "target_label"),
                    )
                )
        out.extend(
            _promtail_stage_labels(
                kinds.seq(kinds.get(job, "pipeline_stages")), (*base, "pipeline_stages")
            )
        )
    return out


def _names(labels: Any) -> list[str]:
    """The label names of a ``labels`` mapping; nothing for any other shape."""
    return [name for name in labels if isinstance(name, str)] if isinstance(labels, dict) else []


def _promtail_stage_labels(stages: Sequence[Any], base: Path_) -> Iterator[LabelSource]:
    for n, stage in enumerate(stages):
        if not isinstance(stage, dict):
            continue
        for kind, body in stage.items():
            where: Path_ = (*base, n, kind)
            if kind == "labels" and isinstance(body, dict):
                for name, source in body.items():
                    field = source if isinstance(source, str) and source else name
                    yield LabelSource(name, "field", (field,), (*where, name))
            elif kind == "static_labels" and isinstance(body, dict):
                for name in body:
                    yield LabelSource(name, "constant", (), (*where, name))
            elif kind == "match" and isinstance(body, dict):
                yield from _promtail_stage_labels(kinds.seq(body.get("stages")), (*where, "stages"))


# Blocks whose attribute holds constant labels.
_ALLOY_CONSTANT_LABELS = {"stage.static_labels": "values", "loki.write": "external_labels"}


def alloy_labels(blocks: Iterable[Block]) -> list[LabelSource]:
    """Every label a ``config.alloy`` can attach, and what it is made from."""
    out: list[LabelSource] = []

    def walk(block: Block) -> None:
        if block.name == "stage.labels":
            for name, source in (block.attrs.get("values") or {}).items():
                out.append(LabelSource(name, "field", (source or name,), (), block.line))
        elif block.name in _ALLOY_CONSTANT_LABELS or block.name.startswith("loki.source."):
            key = _ALLOY_CONSTANT_LABELS.get(block.name, "labels")
            for name in block.attrs.get(key) or {}:
                out.append(LabelSource(name, "constant", (), (), block.line))
            # File targets are label sets too: their non-`__` keys become labels.
            for target in block.attrs.get("targets") or []:
                for name in target if isinstance(target, dict) else ():
                    if not name.startswith("__"):
                        out.append(LabelSource(name, "constant", (), (), block.line))
        elif block.name == "rule":
            target = block.attrs.get("target_label")
            if (
                target
                and not target.startswith("__")
                and block.attrs.get("action", "replace") == "replace"
            ):
                out.append(
                    LabelSource(
                        target,
                        "relabel",
                        tuple(block.attrs.get("source_labels") or ()),
                        (),
                        block.line,
                    )
                )
        for child in block.blocks:
            walk(child)

    for b in blocks:
        walk(b)
    return out


def _unbounded_message(src: LabelSource) -> str:
    named = [s for s in src.sources if s in UNBOUNDED_FIELDS]
    why = (
        f"{', '.join(named)} is unbounded"
        if named
        else f"{', '.join(src.sources)} is not a known bounded field"
    )
    return f"Loki label `{src.label}` takes its value from {', '.join(src.sources)}: {why}"


_LABEL_HINT = (
    "labels only from level, component, unit or constants; put vmid and trace "
    "ids in structured metadata (flintlock-facts.md)"
)


def host_of(ctx: CheckContext, path: str) -> Host | None:
    """The inventory host a ``hosts/<name>/…`` file belongs to, when -i was given."""
    parts = path.split("/")
    if ctx.fleet is None or len(parts) < 3 or parts[0] != "hosts":
        return None
    try:
        return ctx.fleet.host(parts[1])
    except KeyError:
        return None


def read_alloy(ctx: CheckContext, path: str) -> list[Block] | AlloySyntaxError:
    """The blocks of a config.alloy, parsed once per run for all the Alloy checks."""

    def compute() -> list[Block] | AlloySyntaxError:
        try:
            return parse(ctx.read(path).decode("utf-8"))
        except AlloySyntaxError as err:
            return err

    return ctx.memo("alloy", path, compute)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- checks


@register
class PromtailSchema(FileCheck):
    """promtail.yml matches flobs' schema (schemas/promtail.schema.json).

    The schema is strict where flobs writes the keys: an unknown key, a missing
    client URL or both bearer token and basic auth mean a hand edit or a bug.
    """

    ID = "logs-schema"
    FILES = (kinds.PROMTAIL,)
    TITLE = "promtail.yml matches its schema"
    SCHEMA = "promtail.schema.json"
    GLOB = PROMTAIL_GLOB

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        yield from schema_problems(self, ctx, self.SCHEMA, path)


def schema_problems(check: Check, ctx: CheckContext, schema: str, path: str) -> Iterator[Problem]:
    parsed = ctx.parse(path)
    if parsed.error is not None:
        yield ctx.problem(check, path, f"does not parse: {parsed.error}")
        return
    errors = schema_errors(ctx, schema, parsed)
    for key_path, message, _ in sorted(errors, key=lambda e: e[2]):
        yield ctx.problem(
            check,
            path,
            message,
            key_path=key_path,
            hint=f"compare with schemas/{schema}; regenerate with flobs generate",
        )


@register
class LokiLabelCardinality(FileCheck):
    """No Loki label takes its value from an unbounded field.

    Labels may come from constants (cluster, host, inventory labels), from the
    bounded logrus fields `level` and `component`, or from the journal unit. A label
    from `vmid`, a trace/span id, `msg` or `time` makes one stream per microVM or per
    request: Loki's index explodes. Put such fields in structured metadata.
    Example finding: `labels: {vmid: }` in a promtail pipeline.
    """

    ID = "logs-label-cardinality"
    FILES = (kinds.PROMTAIL, kinds.ALLOY)
    TITLE = "no Loki label from an unbounded field"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        if kinds.matches(path, PROMTAIL_GLOB):
            parsed = ctx.parse(path)
            for src in promtail_labels(parsed.data):
                if not src.bounded:
                    yield ctx.problem(
                        self, path, _unbounded_message(src), hint=_LABEL_HINT, key_path=src.key_path
                    )
        else:
            blocks = read_alloy(ctx, path)
            if isinstance(blocks, AlloySyntaxError):
                return  # logs-alloy-syntax reports it
            for src in alloy_labels(blocks):
                if not src.bounded:
                    yield ctx.problem(
                        self, path, _unbounded_message(src), hint=_LABEL_HINT, line=src.line
                    )


@register
class AlloySyntax(FileCheck):
    """config.alloy is well-formed Alloy syntax (as far as flobs writes it).

    Checked without Alloy installed: blocks, attributes, strings and references
    must parse. With Alloy on PATH, logs-alloy-tool also runs `alloy fmt`.
    """

    ID = "logs-alloy-syntax"
    FILES = (kinds.ALLOY,)
    TITLE = "config.alloy parses"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        result = read_alloy(ctx, path)
        if isinstance(result, AlloySyntaxError):
            yield Problem(
                path,
                result.line,
                result.col,
                self.ID,
                self.SEVERITY,
                f"not valid Alloy syntax: {result.message}",
                "regenerate with flobs generate; do not edit generated files",
            )


# Blocks whose exports another component must reference, by the export's name.
_ALLOY_EXPORTS = {
    "loki.process": "receiver",
    "loki.write": "receiver",
    "loki.relabel": "rules",
    "local.file_match": "targets",
}


@register
class AlloyReferences(FileCheck):
    """Every Alloy reference points to a defined component, and every component is used.

    A `forward_to = [loki.process.x.receiver]` naming a missing block makes Alloy
    refuse to start; a `loki.write` nobody forwards to means logs go nowhere.
    Sources (`loki.source.*`) must forward somewhere.
    """

    ID = "logs-alloy-references"
    FILES = (kinds.ALLOY,)
    TITLE = "Alloy components are defined and used"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        blocks = read_alloy(ctx, path)
        if isinstance(blocks, AlloySyntaxError):
            return
        defined = {b.component_id: b for b in blocks}
        used: set[str] = set()
        for block in blocks:
            for ref, line in _refs(block):
                target = ".".join(ref.path[:-1])
                if target not in defined:
                    yield ctx.problem(
                        self,
                        path,
                        f"{block.component_id} references {ref}, but no {target} is defined",
                        hint="define the component or fix the reference",
                        line=line,
                    )
                elif _ALLOY_EXPORTS.get(defined[target].name) != ref.path[-1]:
                    yield ctx.problem(
                        self,
                        path,
                        f"{ref}: {defined[target].name} has no export `{ref.path[-1]}`",
                        line=line,
                    )
                used.add(target)
        for cid, block in defined.items():
            if block.name.startswith("loki.source."):
                if not block.attrs.get("forward_to"):
                    yield ctx.problem(
                        self,
                        path,
                        f"{cid} forwards to nothing",
                        hint="set forward_to",
                        line=block.line,
                    )
            elif block.name in _ALLOY_EXPORTS and cid not in used:
                yield ctx.problem(
                    self,
                    path,
                    f"{cid} is defined but never used",
                    hint="forward to it or remove it",
                    line=block.line,
                )


def _refs(block: Block) -> Iterator[tuple[Ref, int]]:
    def values(value: Any) -> Iterator[Ref]:
        if isinstance(value, Ref):
            yield value
        elif isinstance(value, list):
            for v in value:
                yield from values(v)
        elif isinstance(value, dict):
            for v in value.values():
                yield from values(v)

    for value in block.attrs.values():
        for ref in values(value):
            yield ref, block.line
    for child in block.blocks:
        yield from _refs(child)


@register
class LogAgentLoopback(FileCheck):
    """Promtail's HTTP and gRPC servers listen on loopback unless the inventory allows more.

    Its /metrics and API need no network exposure; the local Prometheus scrapes it
    on the same host. Set vars.logs.allow_public: true to open it on purpose.
    Without -i INVENTORY a public listener is a warning.
    """

    ID = "logs-listen-loopback"
    USES_INVENTORY = True
    FILES = (kinds.PROMTAIL,)
    TITLE = "log agent listens on loopback"

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        data = ctx.parse(path).data
        server = data.get("server") if isinstance(data, dict) else None
        if not isinstance(server, dict):
            return
        host = host_of(ctx, path)
        if host is not None and host.vars.logs.allow_public:
            return
        for key in ("http_listen_address", "grpc_listen_address"):
            address = server.get(key)
            if not isinstance(address, str) or Endpoint(address, 0).is_loopback:
                continue
            yield ctx.problem(
                self,
                path,
                f"server.{key} is {address or '(all interfaces)'}, not loopback",
                hint="set vars.logs.listen to 127.0.0.1:<port>, or allow_public: true",
                key_path=("server", key),
                severity=Severity.ERROR if host is not None else Severity.WARNING,
            )


# --------------------------------------------------------------------------- real tools


def tool_problems(
    check: Check, ctx: CheckContext, tool: str, paths: Sequence[str], command: Sequence[str]
) -> Iterator[Problem]:
    """Run ``<tool> COMMAND <file>`` once per distinct file shape, in parallel.

    Under ``--tools auto`` a missing tool is skipped (``flobs validate`` notes it);
    under ``require`` it raises ``ToolFailure`` (exit 3), as does a tool that cannot
    start, times out or dies from a signal: its verdict cannot be trusted. A
    non-zero exit is a finding carrying the tool's own output, reported for every
    file of that shape.
    """
    if ctx.tools == "off" or not paths:
        return
    binary = find_tool(tool)
    if binary is None:
        if ctx.tools == "require":
            raise ToolFailure([tool], None, f"{tool} is not on PATH")
        return
    yield from ctx.cached_per_file(
        check, paths, lambda todo: _run_tool(check, ctx, tool, binary, todo, command)
    )


def _run_tool(
    check: Check,
    ctx: CheckContext,
    tool: str,
    binary: str,
    paths: Sequence[str],
    command: Sequence[str],
) -> Iterator[Problem]:
    groups = same_shape(ctx, paths)

    def run(path: str) -> tuple[str, int, str]:
        argv = [binary, *command, str(ctx.out / path)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ToolFailure(argv, None, str(err)) from err
        output = (proc.stdout + proc.stderr).strip()
        if proc.returncode < 0:
            raise ToolFailure(argv, proc.returncode, output)
        return path, proc.returncode, output

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        results = list(pool.map(run, sorted(groups)))
    for representative, code, output in results:
        if code == 0:
            continue
        for path in groups[representative]:
            argv = [binary, *command, str(ctx.out / path)]
            said = output.replace(str(ctx.out / representative), str(ctx.out / path))
            yield Problem(
                path,
                None,
                None,
                check.ID,
                Severity.ERROR,
                f"`{' '.join(argv)}` exited {code}: {said[:2000]}",
                f"the {tool} binary rejects this file; regenerate it with "
                "flobs generate, or report a flobs bug if it persists",
            )


def same_shape(ctx: CheckContext, paths: Sequence[str]) -> dict[str, list[str]]:
    """Representative → the files equal to it once each one's own host name is set aside.

    10,000 hosts' agent configs differ only in their host name (and header): a tool
    needs to see each shape once. Host names are DNS names (the inventory schema), so
    one that validates stands for all of its shape.
    """
    by_shape: dict[tuple[int, bytes], list[str]] = {}
    for path in paths:
        try:
            text = (ctx.out / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = path  # unreadable: its own group; the tool reports it
        host = kinds.host_of(path)
        if host:
            text = text.replace(host, "\0host\0")
        by_shape.setdefault(_body_key(text), []).append(path)
    return {members[0]: members for members in by_shape.values()}


@register
class PromtailTool(Check):
    """`promtail -check-syntax` accepts every promtail.yml (when promtail is installed)."""

    ID = "logs-promtail-tool"
    FILES = (kinds.PROMTAIL,)
    TOOL = "promtail"
    TITLE = "promtail -check-syntax"

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        yield from tool_problems(
            self, ctx, "promtail", ctx.glob(PROMTAIL_GLOB), ["-check-syntax", "-config.file"]
        )


@register
class AlloyTool(Check):
    """`alloy fmt` accepts every config.alloy (when alloy is installed)."""

    ID = "logs-alloy-tool"
    FILES = (kinds.ALLOY,)
    TOOL = "alloy"
    TITLE = "alloy fmt"

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        yield from tool_problems(self, ctx, "alloy", ctx.glob(ALLOY_GLOB), ["fmt"])
