"""Prometheus configs and rules: what promtool checks, and what it cannot know."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any, ClassVar

from flobs.artifacts.common import version_at_least
from flobs.checks import Check, CheckContext, FactSource, FileCheck, fact, register
from flobs.checks import kinds as k
from flobs.problems import Problem
from flobs.promtime import parse_duration

# Prometheus' own defaults (config.go): 1m interval, 10s timeout.
DEFAULT_INTERVAL_MS = 60_000
DEFAULT_TIMEOUT_MS = 10_000

# Config keys and the first Prometheus version that accepts them (CHANGELOG.md).
# 2.42 (Debian 12) rejects each of them as an unknown field.
NEWER_KEYS: dict[str, str] = {
    "scrape_config_files": "2.43",
    "native_histogram_bucket_limit": "2.45",
    "keep_dropped_targets": "2.47",
    "track_timestamps_staleness": "2.48",
    "enable_compression": "2.49",
    "scrape_protocols": "2.49",
    "native_histogram_min_bucket_factor": "2.50",
    "rule_query_offset": "2.53",
    "query_offset": "2.53",
    "fallback_scrape_protocol": "3.0",
    "retention": "3.8",  # storage.tsdb.retention in the file
}


def _jobs(doc: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("scrape_configs"), list):
        return []
    return [(i, j) for i, j in enumerate(doc["scrape_configs"]) if isinstance(j, dict)]


def _global(doc: Any) -> dict[str, Any]:
    g = doc.get("global") if isinstance(doc, dict) else None
    return g if isinstance(g, dict) else {}


def _ms(value: Any) -> int | None:
    return parse_duration(value) if isinstance(value, str) else None


@register
class JobNamesUnique(FileCheck):
    """Every `job_name` in a Prometheus config is unique.

    Why: Prometheus refuses to start with a duplicate job name, and the `job` label is
    how rules and dashboards tell flintlockd from node_exporter. Example: two jobs named
    `node` in `hosts/h1/prometheus.yml`.
    """

    ID = "prom-job-unique"
    TITLE = "unique scrape job names"
    FILES: ClassVar[tuple[str, ...]] = k.PROMETHEUS_CONFIGS

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        jobs = _jobs(k.data(ctx, path))
        seen: dict[str, int] = {}
        for i, job in jobs:
            name = job.get("job_name")
            if not isinstance(name, str):
                continue
            if name in seen:
                yield ctx.problem(
                    self,
                    path,
                    f"job_name {name!r} is used twice (first in scrape_configs[{seen[name]}])",
                    key_path=("scrape_configs", i, "job_name"),
                    hint="Prometheus refuses duplicate job names",
                )
            else:
                seen[name] = i


@register
class ScrapeTimeout(FileCheck):
    """`scrape_timeout` is not longer than `scrape_interval` (globally and per job).

    Why: Prometheus refuses such a config. A job without its own timeout inherits the
    global one, so a job with a short interval can break with an unchanged timeout.
    Example: `scrape_interval: 5s` on a job while the global `scrape_timeout` is 10s
    and the job sets `scrape_timeout: 10s`.
    """

    ID = "prom-timeout"
    TITLE = "scrape timeout ≤ scrape interval"
    FILES: ClassVar[tuple[str, ...]] = k.PROMETHEUS_CONFIGS

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        doc = k.data(ctx, path)
        g = _global(doc)
        g_interval = _ms(g.get("scrape_interval")) or DEFAULT_INTERVAL_MS
        g_timeout = _ms(g.get("scrape_timeout")) or DEFAULT_TIMEOUT_MS
        if g_timeout > g_interval:
            yield ctx.problem(
                self,
                path,
                f"global scrape_timeout {g.get('scrape_timeout')} is longer "
                f"than scrape_interval {g.get('scrape_interval', '1m')}",
                key_path=("global", "scrape_timeout"),
            )
        for i, job in _jobs(doc):
            if "scrape_timeout" not in job:
                # Prometheus caps an inherited timeout at the job's interval (config.go).
                continue
            interval = _ms(job.get("scrape_interval")) or g_interval
            timeout = _ms(job.get("scrape_timeout"))
            if timeout is not None and timeout > interval:
                yield ctx.problem(
                    self,
                    path,
                    f"job {job.get('job_name')!r}: scrape_timeout "
                    f"{job['scrape_timeout']} is longer than its scrape interval",
                    key_path=("scrape_configs", i, "scrape_timeout"),
                )


@register
class ReferencedFilesExist(Check):
    """Every `rule_files` and `file_sd_configs` pattern matches at least one generated file.

    Why: Prometheus silently loads nothing for a pattern that matches no file, so the
    alerts or the federation targets are simply gone. Example: `central/rules/`
    deleted while `central/prometheus.yml` still says `rule_files: [rules/*.yml]`.
    """

    ID = "prom-rule-files"
    TITLE = "rule files and file_sd files exist"
    FILES: ClassVar[tuple[str, ...]] = k.PROMETHEUS_CONFIGS

    FACTS: ClassVar[tuple[type[FactSource], ...]] = ()  # set below, after PromRefs

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        for path in k.files(ctx, k.PROMETHEUS_CONFIGS):
            base = posixpath.dirname(path)
            for key_path, pattern, what in fact(ctx, PromRefs, path):
                if pattern.startswith("/"):
                    continue  # an absolute path lives on the target machine, not in OUT
                full = posixpath.normpath(posixpath.join(base, pattern))
                # One directory of the index, not a scan of every file.
                if full.startswith("..") or not ctx.index.glob(full):
                    yield ctx.problem(
                        self,
                        path,
                        f"{what} pattern {pattern!r} matches no file in the output ({full})",
                        key_path=tuple(key_path),
                        hint="regenerate the tree; Prometheus would load nothing",
                    )


class PromRefs(FactSource):
    """The `rule_files` and `file_sd_configs` patterns of a Prometheus config:
    [key path, pattern, what] rows."""

    ID = "facts:prom-refs"
    FILES = k.PROMETHEUS_CONFIGS

    def extract(self, ctx: CheckContext, path: str) -> list[list[Any]]:
        doc = k.data(ctx, path)
        if not isinstance(doc, dict):
            return []
        refs: list[list[Any]] = []
        for i, pattern in enumerate(k.seq(doc.get("rule_files"))):
            refs.append([["rule_files", i], str(pattern), "rule file"])
        for i, job in _jobs(doc):
            for j, sd in enumerate(k.seq(job.get("file_sd_configs"))):
                for m, pattern in enumerate(k.seq(k.get(sd, "files"))):
                    refs.append(
                        [
                            ["scrape_configs", i, "file_sd_configs", j, "files", m],
                            str(pattern),
                            "file_sd file",
                        ]
                    )
        return refs


ReferencedFilesExist.FACTS = (PromRefs,)


@register
class ExternalLabels(FileCheck):
    """Host configs set the `cluster` and `host` external labels; the central sets `cluster`.

    Why: federation and remote_write attach external labels to every series; without
    `host` the centre cannot tell hosts apart, and every dashboard and alert groups by
    it. The `host` label must be the host's own name. Example: `host: fl-a-01` in
    `hosts/fl-a-02/prometheus.yml` (a copied file).
    """

    ID = "prom-external-labels"
    USES_INVENTORY = True
    TITLE = "external labels cluster/host present and right"
    FILES: ClassVar[tuple[str, ...]] = k.PROMETHEUS_CONFIGS

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        doc = k.data(ctx, path)
        if not isinstance(doc, dict):
            return
        labels = _global(doc).get("external_labels")
        labels = labels if isinstance(labels, dict) else {}
        host = k.host_of(path)
        wanted = ("cluster", "host") if host else ("cluster",)
        for name in wanted:
            if name not in labels:
                yield ctx.problem(
                    self,
                    path,
                    f"external label {name!r} is missing",
                    key_path=("global", "external_labels"),
                )
        if host and "host" in labels and labels["host"] != host:
            yield ctx.problem(
                self,
                path,
                f"external label host={labels['host']!r} but this is host {host!r}",
                key_path=("global", "external_labels", "host"),
            )
        if ctx.fleet and "cluster" in labels and labels["cluster"] != ctx.fleet.cluster:
            yield ctx.problem(
                self,
                path,
                f"external label cluster={labels['cluster']!r} but "
                f"the inventory's cluster is {ctx.fleet.cluster!r}",
                key_path=("global", "external_labels", "cluster"),
            )


def _walk_keys(
    node: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), str(key)
            if key in ("labels", "external_labels", "annotations", "params"):
                continue  # user-chosen names, not config keys
            yield from _walk_keys(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk_keys(value, (*path, i))


@register
class VersionKeys(FileCheck):
    """No config key newer than the Prometheus version the file is for.

    Why: Prometheus rejects unknown keys, so a key from a newer release stops an older
    Prometheus from starting. The version comes from the inventory
    (`local_prometheus.version`, `central.prometheus.version`), 2.42 without one.
    Example: `keep_dropped_targets: 100` (2.47+) for a host running 2.42.
    """

    ID = "prom-version-keys"
    USES_INVENTORY = True
    TITLE = "no keys newer than the target Prometheus"
    FILES: ClassVar[tuple[str, ...]] = (*k.PROMETHEUS_CONFIGS, *k.RULE_FILES)

    def check_file(self, ctx: CheckContext, path: str) -> Iterator[Problem]:
        parsed = k.load(ctx, path)
        if parsed is None:
            return  # file-parses reports it
        version = k.prometheus_version(ctx, path)
        reported: set[str] = set()
        # Hosts' files share one parsed body (CheckContext.parse): walk each body once.
        newer = ctx.memo(
            "newer-keys",
            parsed.identity,
            lambda: [(kp, key) for kp, key in _walk_keys(parsed.data) if key in NEWER_KEYS],
        )
        for key_path, key in newer:
            since = NEWER_KEYS[key]
            if version_at_least(version, since) or key in reported:
                continue
            reported.add(key)  # once per file: the same key repeats in every job
            yield ctx.problem(
                self,
                path,
                f"{key!r} needs Prometheus {since} or newer; this file is for {version}",
                key_path=key_path,
                hint="set the version in the inventory (local_prometheus.version / "
                "central.prometheus.version) if the target really runs a newer one",
            )
