"""Which generated file is what, and safe access to its parsed content.

The output layout is documented in docs/architecture.md; every check finds its
files through these patterns, so a layout change is made here once. ``*`` never
crosses a ``/``; ``**/`` spans any number of directories.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flobs import versions
from flobs.checks import CheckContext, Parsed
from flobs.checks.index import FileKind
from flobs.checks.index import matches as matches  # re-exported: k.matches
from flobs.docwalk import iter_panels as iter_panels
from flobs.docwalk import iter_rules
from flobs.model import Host

HOST_PROMETHEUS = "hosts/*/prometheus.yml"
CENTRAL_PROMETHEUS = "central/prometheus.yml"
PROMETHEUS_CONFIGS = (HOST_PROMETHEUS, CENTRAL_PROMETHEUS)
HOST_RULES = "hosts/*/rules/*.yml"
CENTRAL_RULES = "central/rules/*.yml"
RULE_FILES = (HOST_RULES, CENTRAL_RULES, "hosts/*/rules/*.yaml", "central/rules/*.yaml")
TARGETS = "central/targets/*.json"
PROMTOOL_TESTS = ("central/tests/*.yml", "central/tests/*.yaml")
DASHBOARDS = ("grafana/dashboards/**/*.json",)
DATASOURCES = ("grafana/provisioning/datasources/*.yaml", "grafana/provisioning/datasources/*.yml")
DASHBOARD_PROVIDERS = (
    "grafana/provisioning/dashboards/*.yaml",
    "grafana/provisioning/dashboards/*.yml",
)
NODE_EXPORTER_WEB = "hosts/*/exporters/node_exporter-web.yml"
PROMETHEUS_WEB = "hosts/*/prometheus-web.yml"  # the same exporter-toolkit format
PROCESS_EXPORTER = "hosts/*/exporters/process-exporter.yml"
PROMTAIL = "hosts/*/promtail.yml"
ALLOY = "hosts/*/config.alloy"
OTELCOL = "hosts/*/otelcol.yaml"
MANIFEST = "manifest.json"
ALERTMANAGER_CONFIG = "central/alertmanager.yml"
ALERTMANAGER_ROUTES = "central/alertmanager-routes.test.yml"
VMALERT_ARGS = "central/vmalert.args"

# A header comment is a few lines; its version line is well inside this.
HEADER_BYTES = 2048
DEFAULT_PROMETHEUS_VERSION = "2.42"  # Debian 12's, the oldest target (grafana-api.md)


# The kinds of file in OUT, most specific first: a file is of the first kind that
# matches it. Each names its parser and, for flobs' strict formats, its schema.
KINDS: tuple[FileKind, ...] = (
    FileKind("manifest", (MANIFEST,), "json", "manifest.schema.json"),
    FileKind("prometheus-config", PROMETHEUS_CONFIGS, "yaml", "prometheus.schema.json"),
    FileKind("rules", RULE_FILES, "yaml", "prometheus-rules.schema.json"),
    FileKind("file-sd", (TARGETS,), "json", "file-sd.schema.json"),
    FileKind("promtool-tests", PROMTOOL_TESTS, "yaml", "promtool-tests.schema.json"),
    FileKind("dashboard", DASHBOARDS, "json", "grafana-dashboard.schema.json"),
    FileKind("datasources", DATASOURCES, "yaml", "grafana-datasources.schema.json"),
    FileKind(
        "dashboard-providers",
        DASHBOARD_PROVIDERS,
        "yaml",
        "grafana-dashboard-providers.schema.json",
    ),
    FileKind(
        "web-config", (NODE_EXPORTER_WEB, PROMETHEUS_WEB), "yaml", "node-exporter-web.schema.json"
    ),
    FileKind("process-exporter", (PROCESS_EXPORTER,), "yaml", "process-exporter.schema.json"),
    FileKind("promtail", (PROMTAIL,), "yaml", "promtail.schema.json", "logs-schema"),
    FileKind("otelcol", (OTELCOL,), "yaml", "otelcol.schema.json", "otelcol-schema"),
    FileKind("alloy", (ALLOY,), "alloy"),
    FileKind("alertmanager", (ALERTMANAGER_CONFIG, ALERTMANAGER_ROUTES), "yaml"),
    FileKind("yaml", ("**/*.yml", "**/*.yaml"), "yaml"),
    FileKind("json", ("**/*.json",), "json"),
    FileKind("other", ("**/*",), "none"),
)


def files(ctx: CheckContext, patterns: str | Iterable[str]) -> list[str]:
    """Files under OUT matching any of ``patterns``, sorted (from the tree's index)."""
    return ctx.index.select(patterns)


def load(ctx: CheckContext, path: str) -> Parsed | None:
    """The parsed file, or None when it cannot be read or parsed (``file-parses`` says why)."""
    try:
        parsed = ctx.parse(path)
    except (OSError, UnicodeDecodeError):
        return None
    return parsed if parsed.error is None else None


def seq(value: Any) -> list[Any]:
    """``value`` when it is a list, else empty: hand-edited files can hold any shape."""
    return value if isinstance(value, list) else []


def get(node: Any, key: str) -> Any:
    """``node[key]`` when ``node`` is a mapping, else None."""
    return node.get(key) if isinstance(node, dict) else None


def data(ctx: CheckContext, path: str) -> Any:
    parsed = load(ctx, path)
    return None if parsed is None else parsed.data


def host_of(path: str) -> str | None:
    """``hosts/<name>/…`` → ``<name>``."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "hosts" else None


def inventory_host(ctx: CheckContext, path: str) -> Host | None:
    name = host_of(path)
    if ctx.fleet is None or name is None:
        return None
    try:
        return ctx.fleet.host(name)
    except KeyError:
        return None


def prometheus_version(ctx: CheckContext, path: str) -> str:
    """The Prometheus version a config or rules file is for.

    From the inventory when validate has one; else from the file's own header line
    (``# For Prometheus 3.13.``); else 2.42, what flobs wrote for before that line.
    """
    if ctx.fleet is None:
        try:
            with (ctx.out / path).open("rb") as f:
                head = f.read(HEADER_BYTES)
        except OSError:
            return DEFAULT_PROMETHEUS_VERSION
        return versions.file_prometheus_version(head) or DEFAULT_PROMETHEUS_VERSION
    if path.startswith("central/"):
        return ctx.fleet.central.prometheus.version
    host = inventory_host(ctx, path)
    return host.vars.local_prometheus.version if host else DEFAULT_PROMETHEUS_VERSION


def rule_exprs(doc: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(key path, expr) for every rule of a Prometheus rules document."""
    for at, rule in iter_rules(doc):
        if isinstance(rule.get("expr"), str | int | float):
            yield (*at, "expr"), str(rule["expr"])


def panel_exprs(dashboard: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(JSON path, PromQL) for every panel target with an ``expr``."""
    for path, panel in iter_panels(dashboard):
        for ti, target in enumerate(seq(panel.get("targets"))):
            if isinstance(target, dict) and isinstance(target.get("expr"), str) and target["expr"]:
                if _is_non_prometheus(target, panel):
                    continue
                yield (*path, "targets", ti, "expr"), target["expr"]


def _is_non_prometheus(target: dict[str, Any], panel: dict[str, Any]) -> bool:
    """LogQL/TraceQL targets carry ``expr`` too; only Prometheus ones are PromQL."""
    for ref in (target.get("datasource"), panel.get("datasource")):
        if isinstance(ref, dict) and isinstance(ref.get("type"), str):
            return bool(ref["type"] != "prometheus")
    return False


class LazyTree(Mapping[str, bytes]):
    """OUT as ``{path: bytes}``, read on access: 10,000 hosts do not fit comfortably in RAM."""

    def __init__(self, out: Path, paths: list[str]) -> None:
        self._out = out
        self._paths = paths
        self._set = set(paths)

    def __getitem__(self, key: str) -> bytes:
        if key not in self._set:
            raise KeyError(key)
        return (self._out / key).read_bytes()

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, key: object) -> bool:
        return key in self._set
