"""Closure: every series the centre reads must be produced on the hosts and cross the wire.

The central rules (``central/rules/*.yml``) and the PromQL of the dashboards
(``grafana/dashboards/*.json``, Grafana variables substituted) read metrics by name.
Each such name must be

* **produced**: a local recording rule's output (``hosts/*/rules/*.yml``) or a metric
  that a scrape job present in some ``hosts/*/prometheus.yml`` produces
  (``series.JOB_PRODUCES``, plus the synthetic ``up``/``scrape_*`` of every job); and
* **federated**: admitted by a ``match[]`` selector of the central federate job or,
  in remote_write mode, by the hosts' ``write_relabel_configs`` keep regex.

Names recorded by the central rules themselves are available at the centre directly
(their inputs are checked like any other use). Everything is read from the
generated tree, so ``flobs validate`` can run it on an OUT directory.

The other direction, ``unread``: every series the hosts send (their recording rules,
and the raw names federation or the remote_write keep regex admit by name) is read by a
central rule or a dashboard; one that is not costs a series per host for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flobs import yamlio
from flobs.artifacts.series import CENTRAL_JOB_PRODUCES, JOB_PRODUCES, SYNTHETIC
from flobs.docwalk import iter_panels, iter_rules, label_values
from flobs.promql import metric_names, parse_error, selector_matches, substitute
from flobs.promql import selectors as parse_selectors

Reason = Literal["not federated", "not produced"]

CENTRAL_CONFIG = "central/prometheus.yml"
MANIFEST = "manifest.json"
# Grafana's `label_values(<series selector>, <label>)` variable query.
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")


@dataclass(frozen=True, order=True)
class Gap:
    file: str  # relative to OUT, posix
    metric: str
    reason: Reason
    where: str  # panel title, variable or rule name

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.metric} is {self.reason}"


@dataclass(frozen=True)
class Use:
    """One metric name read by a central rule or dashboard query."""

    file: str
    where: str
    metric: str


def _load(path: str, data: bytes) -> Any:
    text = data.decode("utf-8")
    if path.endswith(".json"):
        return yamlio.load_json(text)
    return yamlio.load(text)


def _get(node: Any, key: str) -> Any:
    """``node[key]`` when ``node`` is a mapping, else None: a hand edit can make any
    node any shape, and the closure must still be computed from everything else."""
    return node.get(key) if isinstance(node, dict) else None


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _fullmatch(pattern: str, text: str) -> bool:
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return False  # a hand-edited regex Python cannot read; promtool reports it


def _strip_comments(data: bytes) -> bytes:
    """Generated files differ per host mostly in their header comment; cache without it."""
    lines = data.split(b"\n")
    n = 0
    while n < len(lines) and lines[n].startswith(b"#"):
        n += 1
    return b"\n".join(lines[n:])


def config_facts(doc: Any) -> dict[str, list[str]]:
    """What one host's prometheus.yml gives the closure: its scrape job names and the
    remote_write keep regexes (JSON data, so validate can cache it per file)."""
    jobs: list[str] = []
    keep: list[str] = []
    for job in _seq(_get(doc, "scrape_configs")):
        if isinstance(_get(job, "job_name"), str):
            jobs.append(job["job_name"])
    for rw in _seq(_get(doc, "remote_write")):
        for relabel in _seq(_get(rw, "write_relabel_configs")):
            if _get(relabel, "action") == "keep" and relabel.get("source_labels") == ["__name__"]:
                keep.append(str(relabel.get("regex", "(.*)")))
    return {"jobs": jobs, "keep": keep}


def rules_facts(doc: Any) -> dict[str, list[str]]:
    """What one host rules file gives the closure: the names it records."""
    return {
        "records": [
            rule["record"] for _, rule in iter_rules(doc) if isinstance(rule.get("record"), str)
        ]
    }


class HostSide:
    """What the hosts produce and let through, merged over every host file."""

    def __init__(self) -> None:
        self.records: set[str] = set()
        self.jobs: set[str] = set()
        self.keep_regexes: set[str] = set()

    def add(self, facts: dict[str, list[str]]) -> None:
        self.records.update(facts.get("records", ()))
        self.jobs.update(facts.get("jobs", ()))
        self.keep_regexes.update(facts.get("keep", ()))


def _hosts(tree: Mapping[str, bytes]) -> HostSide:
    """The hosts' facts from their files; each distinct body (after the header comment,
    where hosts' files differ most) parsed once."""
    hosts = HostSide()
    seen: set[bytes] = set()
    for path in sorted(tree):
        if is_host_config(path) or is_host_rules(path):
            body = _strip_comments(tree[path])
            if body not in seen:
                seen.add(body)
                doc = _load(path, body)
                hosts.add(config_facts(doc) if is_host_config(path) else rules_facts(doc))
    return hosts


def _central_config(tree: Mapping[str, bytes]) -> Any:
    data = tree.get(CENTRAL_CONFIG)
    return _load(CENTRAL_CONFIG, data) if data is not None else None


def _manifest(tree: Mapping[str, bytes]) -> Any:
    data = tree.get(MANIFEST)
    try:
        return yamlio.load_json(data.decode("utf-8")) if data is not None else None
    except (ValueError, yamlio.YamlSyntaxError):
        return None  # file-parses reports it


def _produced_by(jobs: set[str], metric: str, extra: Mapping[str, list[str]] | None = None) -> bool:
    if jobs and metric in SYNTHETIC:
        return True
    produces = {**(extra or {}), **JOB_PRODUCES}  # flobs' own job names cannot be reused
    return any(re.fullmatch(pattern, metric) for job in jobs for pattern in produces.get(job, ()))


def _extra_jobs(doc: Any) -> dict[str, list[str]]:
    """What the inventory's extra scrape jobs send to the centre (manifest ``extra_jobs``)."""
    jobs = doc.get("extra_jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, dict):
        return {}
    return {
        str(job): [str(n) for n in names] for job, names in jobs.items() if isinstance(names, list)
    }


def _federation_selectors(doc: Any) -> list[str]:
    """The ``match[]`` selectors of the central federate job (none in remote_write mode)."""
    selectors: list[str] = []
    for job in _seq(_get(doc, "scrape_configs")):
        if _get(job, "metrics_path") == "/federate":
            selectors.extend(str(s) for s in _seq(_get(_get(job, "params"), "match[]")))
    return selectors


_PLAIN_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def _named_on_the_wire(selectors: list[str], keep_regexes: set[str]) -> set[str]:
    """Metric names the federation selectors or keep regexes admit by their exact name."""
    names: set[str] = set()
    for selector in selectors:
        if parse_error(selector) is not None:
            continue
        for sel in parse_selectors(selector):
            nm = sel.name_matcher()
            if nm is not None and nm[0] == "=":
                names.add(nm[1])
    for regex in keep_regexes:
        names.update(part for part in regex.split("|") if _PLAIN_NAME.fullmatch(part))
    return names


def _central_jobs(doc: Any) -> set[str]:
    """Job names the central Prometheus scrapes itself (their series need no federation)."""
    doc = doc or {}
    jobs = doc.get("scrape_configs") or [] if isinstance(doc, dict) else []
    return {str(j.get("job_name")) for j in jobs if isinstance(j, dict) and j.get("job_name")}


def _expr_uses(file: str, where: str, expr: str) -> Iterator[Use]:
    concrete = substitute(expr)
    if parse_error(concrete) is not None:
        return  # unparsable queries are the PromQL check's business, not closure's
    for name in sorted(metric_names(concrete)):
        yield Use(file, where, name)


def _rule_uses(path: str, doc: Any) -> Iterator[Use]:
    for _, rule in iter_rules(doc):
        name = rule.get("alert") or rule.get("record") or "?"
        yield from _expr_uses(path, f"rule {name}", str(rule.get("expr", "")))


def _is_prometheus(ref: Any) -> bool:
    if isinstance(ref, dict):
        return ref.get("type") == "prometheus"
    return isinstance(ref, str) and ref.startswith("$")


def _dashboard_uses(path: str, doc: Any) -> Iterator[Use]:
    if not isinstance(doc, dict):
        return
    for var in _seq(_get(doc.get("templating"), "list")):
        if not isinstance(var, dict):
            continue
        query = var.get("query")
        if var.get("type") != "query" or not _is_prometheus(var.get("datasource")):
            continue
        text = str(query.get("query", "")) if isinstance(query, dict) else str(query or "")
        parsed = label_values(text)
        if parsed is not None and parsed[0] is not None:
            yield from _expr_uses(path, f"variable {var.get('name')}", parsed[0])
    for _, panel in iter_panels(doc):
        for target in _seq(panel.get("targets")):
            if not isinstance(target, dict):
                continue
            ref = target.get("datasource") or panel.get("datasource")
            if "expr" in target and _is_prometheus(ref):
                yield from _expr_uses(path, f"panel {panel.get('title')!r}", str(target["expr"]))


def is_host_config(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 3 and parts[0] == "hosts" and parts[2] == "prometheus.yml"


def is_host_rules(path: str) -> bool:
    parts = path.split("/")
    return (len(parts) >= 4 and parts[0] == "hosts" and parts[2] == "rules") and path.endswith(
        (".yml", ".yaml")
    )


def is_central_rules(path: str) -> bool:
    return path.startswith("central/rules/") and path.endswith((".yml", ".yaml"))


def is_dashboard(path: str) -> bool:
    return path.startswith("grafana/dashboards/") and path.endswith(".json")


def uses(tree: Mapping[str, bytes]) -> list[Use]:
    """Every metric name the central rules and dashboards read."""
    return uses_of(
        {p: _load(p, tree[p]) for p in sorted(tree) if is_central_rules(p) or is_dashboard(p)}
    )


def uses_of(docs: Mapping[str, Any]) -> list[Use]:
    """Every metric name the given central rules files and dashboards (parsed) read."""
    found: list[Use] = []
    for path in sorted(docs):
        if is_central_rules(path):
            found.extend(_rule_uses(path, docs[path]))
        elif is_dashboard(path):
            found.extend(_dashboard_uses(path, docs[path]))
    return found


def closure_gaps(tree: Mapping[str, bytes]) -> list[Gap]:
    """Metric names read at the centre that are not produced on hosts or not federated.

    ``tree`` maps OUT-relative posix paths to file contents (``render_tree`` output or
    the files of an OUT directory). Raises ``ValueError``/``YamlSyntaxError`` for a file
    that does not parse.
    """
    hosts = _hosts(tree)
    central = {
        path: _load(path, tree[path])
        for path in sorted(tree)
        if is_central_rules(path) or is_dashboard(path)
    }
    return gaps(hosts, central, _central_config(tree), _manifest(tree))


def gaps(
    hosts: HostSide, central: Mapping[str, Any], central_config: Any, manifest: Any
) -> list[Gap]:
    """The closure from parsed inputs: the hosts' merged facts, the central rules files
    and dashboards (path → document), the central prometheus.yml and manifest.json."""
    central_records: set[str] = set()
    for path, doc in central.items():
        if is_central_rules(path):
            central_records.update(rules_facts(doc)["records"])
    selectors = _federation_selectors(central_config)
    central_jobs = _central_jobs(central_config)

    def federated(metric: str) -> bool:
        if any(selector_matches(s, metric) for s in selectors):
            return True
        return any(_fullmatch(rx, metric) for rx in hosts.keep_regexes)

    extra = _extra_jobs(manifest)

    def produced(metric: str) -> bool:
        return metric in hosts.records or _produced_by(hosts.jobs, metric, extra)

    found: set[Gap] = set()
    for use in uses_of(central):
        if use.metric in central_records:
            continue  # recorded at the centre; its own inputs are uses too
        if any(
            re.fullmatch(pattern, use.metric)
            for job in central_jobs
            for pattern in CENTRAL_JOB_PRODUCES.get(job, ())
        ):
            continue  # scraped by the centre itself (series.CENTRAL_JOB_PRODUCES)
        if not produced(use.metric):
            found.add(Gap(use.file, use.metric, "not produced", use.where))
        if not federated(use.metric):
            found.add(Gap(use.file, use.metric, "not federated", use.where))
    return sorted(found)


def unread(tree: Mapping[str, bytes]) -> list[str]:
    """Series the hosts send to the centre that no central rule or dashboard reads.

    Candidates are the hosts' recording rule outputs and the raw names the central
    federate ``match[]`` (or the hosts' remote_write keep regex) admits by exact name;
    each must also cross the wire and be produced by some host.
    """
    hosts = _hosts(tree)
    selectors = _federation_selectors(_central_config(tree))
    extra = _extra_jobs(_manifest(tree))
    candidates = hosts.records | {
        name
        for name in _named_on_the_wire(selectors, hosts.keep_regexes)
        if _produced_by(hosts.jobs, name, extra)
    }
    sent = {
        name
        for name in candidates
        if any(selector_matches(s, name) for s in selectors)
        or any(_fullmatch(rx, name) for rx in hosts.keep_regexes)
    }
    return sorted(sent - {use.metric for use in uses(tree)})
