"""The inventory's extension points: files it brings along, and overrides of what flobs ships.

``extensions.rule_files`` and ``extensions.dashboards_dir`` name files relative to the
inventory. They are read, parsed and checked here, where they enter (STYLE.md), so a
rules file that does not parse or a dashboard whose uid is taken is an inventory error
located in *that* file (``rules/mine.yml:4:7: $.groups[0].rules[1].expr: …``) and
nothing is written. What passes becomes :class:`flobs.model.UserFile` records that the
``extensions`` artifact copies into OUT and the manifest marks as ``origin: user``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from flobs import resources, yamlio
from flobs.inventory.source import DocPath, Source
from flobs.model import AlertOverride, Extensions, PanelOverride, UserFile, Validation
from flobs.problems import Problem, Severity

UID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")  # Grafana's rule (grafana-api.md)
USER_PREFIX = "user-"
RULES_DIR = "central/rules"
TESTS_DIR = "central/tests"
DASHBOARDS_DIR = "grafana/dashboards"
# Alert name -> (central.alerts key of its `for`, key of its threshold); None: the alert
# has no such knob (FlintlockdRestarting fires on the first evaluation by design).
ALERT_KNOBS: dict[str, tuple[str | None, str | None]] = {
    "FlobsHostDown": ("host_down_for", None),
    "FlobsHostsMissing": ("host_down_for", None),
    "FlintlockdDown": ("flintlockd_down_for", None),
    "FlintlockdRestarting": (None, "flintlockd_restarts_threshold"),
    "FlintlockdGrpcErrors": ("grpc_error_for", "grpc_error_ratio"),
    "FirecrackerVmmPanic": ("vmm_panic_for", None),
    "FirecrackerMetricsStale": ("firecracker_stale_for", None),
    "FlintlockMetricsDown": ("firecracker_stale_for", None),
    "LogShipperDown": ("agent_down_for", None),
    "OtelCollectorDown": ("agent_down_for", None),
    "HostExporterDown": ("agent_down_for", None),
}


@cache
def _rules_validator() -> Any:
    return resources.validator("prometheus-rules.schema.json")


@dataclass
class _Loader:
    inventory: Source
    base_dir: Path | None
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: DocPath, message: str, hint: str | None = None) -> None:
        self.problems.append(self.inventory.problem(path, message, hint))

    def file_error(
        self,
        shown: str,
        positions: yamlio.Positions | None,
        key_path: DocPath,
        message: str,
        hint: str | None = None,
    ) -> None:
        mark = positions.of(key_path) if positions is not None else None
        self.problems.append(
            Problem(
                shown,
                mark.line if mark else None,
                mark.col if mark else None,
                "inventory",
                Severity.ERROR,
                message,
                hint,
                yamlio.format_path(key_path) if key_path else None,
            )
        )

    def read(self, rel: str, where: DocPath) -> tuple[str, str] | None:
        """(shown name, text) of a file named relative to the inventory, or None (reported)."""
        if self.base_dir is None:
            self.error(where, "extension files need an inventory file to be relative to")
            return None
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            self.error(
                where,
                f"{rel!r} must be relative to the inventory and stay below it",
                "keep extension files next to the inventory (e.g. rules/mine.yml)",
            )
            return None
        path = self.base_dir / rel
        shown = str(Path(self.inventory.name).parent / rel)
        try:
            return shown, path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.error(where, f"{rel}: file not found", f"looked for {shown}")
        except (OSError, UnicodeDecodeError) as err:
            self.error(where, f"{rel}: cannot read: {err}")
        return None

    def yaml(self, shown: str, text: str) -> tuple[Any, yamlio.Positions] | None:
        try:
            return yamlio.load_with_positions(text)
        except yamlio.YamlSyntaxError as err:
            problem = err.as_problem(shown, check_id="inventory")
            self.problems.append(problem)
            return None


def _stem(rel: str) -> str:
    name = PurePosixPath(rel).name
    return re.sub(r"\.ya?ml$", "", name)


def _rule_files(ld: _Loader, entries: list[dict[str, Any]]) -> list[UserFile]:
    import promql_parser

    files: list[UserFile] = []
    names: dict[str, int] = {}
    tests: dict[str, DocPath] = {}
    for i, entry in enumerate(entries):
        where: DocPath = ("extensions", "rule_files", i, "path")
        stem = _stem(entry["path"])
        if stem in names:
            ld.error(
                where,
                f"a rules file named {stem!r} is already listed at "
                f"$.extensions.rule_files[{names[stem]}]",
                "rules files are copied by file name; rename one",
            )
            continue
        names[stem] = i
        read = ld.read(entry["path"], where)
        if read is None:
            continue
        shown, text = read
        loaded = ld.yaml(shown, text)
        if loaded is None:
            continue
        doc, positions = loaded
        errors = sorted(_rules_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
        for err in errors:
            ld.file_error(
                shown,
                positions,
                tuple(err.absolute_path),
                f"not a Prometheus rules file: {_short(err)}",
                "see https://prometheus.io/docs/prometheus/latest/configuration/recording_rules/",
            )
        if errors:
            continue
        bad = False
        for gi, group in enumerate(doc.get("groups") or []):
            for ri, rule in enumerate(group.get("rules") or []):
                try:
                    promql_parser.parse(str(rule.get("expr", "")))
                except ValueError as err:
                    bad = True
                    ld.file_error(
                        shown,
                        positions,
                        ("groups", gi, "rules", ri, "expr"),
                        f"not PromQL: {str(err).splitlines()[0]}",
                        "promtool check rules shows the same; fix the expression",
                    )
        if bad:
            continue
        target = f"{RULES_DIR}/{USER_PREFIX}{stem}.yml"
        # Copied byte for byte: the user's comments (and `# flobs: disable=…`) stay.
        files.append(UserFile(target, entry["path"], "rules", text.encode("utf-8")))
        for j, test_rel in enumerate(entry.get("tests") or []):
            at: DocPath = ("extensions", "rule_files", i, "tests", j)
            test = _rules_test(ld, test_rel, at, stem)
            if test is None:
                continue
            if test.path in tests:
                ld.error(
                    at,
                    f"a test file named {PurePosixPath(test_rel).name!r} is already listed "
                    f"at {yamlio.format_path(tests[test.path])}",
                    "test files are copied by file name; rename one",
                )
                continue
            tests[test.path] = at
            files.append(test)
    return files


def _rules_test(ld: _Loader, rel: str, where: DocPath, stem: str) -> UserFile | None:
    read = ld.read(rel, where)
    if read is None:
        return None
    shown, text = read
    loaded = ld.yaml(shown, text)
    if loaded is None:
        return None
    doc, positions = loaded
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list) or not doc["tests"]:
        ld.file_error(
            shown,
            positions,
            ("tests",) if isinstance(doc, dict) else (),
            "a promtool test file needs a non-empty `tests:` list",
            "see https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/",
        )
        return None
    # promtool resolves rule_files relative to the test file: point them at the copies.
    rule_files = [f"../rules/{USER_PREFIX}{stem}.yml"]
    for item in doc.get("rule_files") or []:
        name = PurePosixPath(str(item)).name
        if name.startswith("flobs-"):
            rule_files.append(f"../rules/{name}")  # flobs' own central rules, by name
    body = {"rule_files": rule_files, **{k: v for k, v in doc.items() if k != "rule_files"}}
    header = f"promtool unit tests for {USER_PREFIX}{stem}.yml, from {rel} (flobs extensions)."
    data = yamlio.dump(body, header=header).encode("utf-8")
    test_stem = _stem(rel)
    return UserFile(f"{TESTS_DIR}/{USER_PREFIX}{test_stem}.yml", rel, "rules-test", data)


def _short(err: Any) -> str:
    # Never echo the value (it could be a secret someone pasted in), only the rule.
    if err.validator in ("required", "additionalProperties"):
        return str(err.message)
    return f"fails the schema's {err.validator!r} rule"


def _dashboards(ld: _Loader, rel_dir: str, taken: Iterable[str]) -> list[UserFile]:
    where: DocPath = ("extensions", "dashboards_dir")
    if ld.base_dir is None:
        ld.error(where, "extension files need an inventory file to be relative to")
        return []
    pure = PurePosixPath(rel_dir)
    if pure.is_absolute() or ".." in pure.parts:
        ld.error(where, f"{rel_dir!r} must be relative to the inventory and stay below it")
        return []
    directory = ld.base_dir / rel_dir
    if not directory.is_dir():
        ld.error(where, f"{rel_dir}: no such directory", "create it or remove dashboards_dir")
        return []
    ours = set(taken)
    seen: dict[str, str] = {}
    files: list[UserFile] = []
    for path in sorted(directory.glob("*.json")):
        rel = (PurePosixPath(rel_dir) / path.name).as_posix()
        read = ld.read(rel, where)
        if read is None:
            continue
        shown, text = read
        try:
            model = json.loads(text)
        except json.JSONDecodeError as err:
            ld.problems.append(
                Problem(
                    shown,
                    err.lineno,
                    err.colno,
                    "inventory",
                    Severity.ERROR,
                    f"not JSON: {err.msg}",
                    "fix the JSON at this position",
                )
            )
            continue
        try:
            positions: yamlio.Positions | None = yamlio.load_with_positions(text)[1]
        except yamlio.YamlSyntaxError:
            positions = None  # valid JSON that YAML 1.1 reads differently: no columns then
        prefix: DocPath = ()
        if isinstance(model, dict) and isinstance(model.get("dashboard"), dict):
            model, prefix = model["dashboard"], ("dashboard",)  # an export with its meta
        if not isinstance(model, dict):
            ld.file_error(
                shown, positions, (), "a dashboard must be a JSON object", "export it from Grafana"
            )
            continue
        uid, title = model.get("uid"), model.get("title")
        if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
            ld.file_error(
                shown,
                positions,
                (*prefix, "uid"),
                f"dashboard uid must match {UID_RE.pattern}",
                "Grafana refuses other uids; a stable uid is what lets a push update it",
            )
            continue
        if not isinstance(title, str) or not title.strip():
            ld.file_error(
                shown,
                positions,
                (*prefix, "title"),
                "dashboard title must not be empty",
                "Grafana answers 400 empty-name",
            )
            continue
        if uid in ours:
            ld.file_error(
                shown,
                positions,
                (*prefix, "uid"),
                f"dashboard uid {uid!r} is one of flobs' own dashboards",
                "give yours another uid, or change flobs' with extensions.overrides",
            )
            continue
        if uid in seen:
            ld.file_error(
                shown,
                positions,
                (*prefix, "uid"),
                f"dashboard uid {uid!r} is also used by {seen[uid]}",
                "every dashboard needs its own uid",
            )
            continue
        seen[uid] = shown
        # Stored without Grafana's per-save keys; id/version would make every push differ.
        clean = {k: v for k, v in model.items() if k not in ("id", "version")}
        data = (json.dumps(clean, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        files.append(UserFile(f"{DASHBOARDS_DIR}/{uid}.json", rel, "dashboard", data))
    return files


def _panel_overrides(ld: _Loader, raw: dict[str, Any]) -> list[PanelOverride]:
    from flobs.artifacts.dashboards import specs

    by_uid = {s.uid: s for s in specs()}
    out: list[PanelOverride] = []
    for uid, panels in raw.items():
        if uid not in by_uid:
            ld.error(
                ("extensions", "overrides", "panels", uid),
                f"no flobs dashboard has uid {uid!r}",
                f"flobs ships {', '.join(sorted(by_uid))}",
            )
            continue
        known = {p.title: p for p in by_uid[uid].panels()}
        for title, change in panels.items():
            where: DocPath = ("extensions", "overrides", "panels", uid, title)
            if title not in known:
                ld.error(
                    where,
                    f"dashboard {uid} has no panel titled {title!r}",
                    "panel titles are listed in the README's dashboard tables",
                )
                continue
            if "threshold" in change and not known[title].thresholds:
                ld.error(
                    (*where, "threshold"),
                    f"panel {title!r} has no threshold to change",
                    "only panels that draw a threshold line take `threshold`",
                )
                continue
            out.append(
                PanelOverride(
                    uid,
                    title,
                    bool(change.get("disable", False)),
                    change.get("title"),
                    float(change["threshold"]) if "threshold" in change else None,
                )
            )
    return out


def _alert_overrides(ld: _Loader, raw: dict[str, Any]) -> list[AlertOverride]:
    from flobs.promtime import parse_duration

    out: list[AlertOverride] = []
    for name, change in raw.items():
        where: DocPath = ("extensions", "overrides", "alerts", name)
        if name not in ALERT_KNOBS:
            ld.error(where, f"flobs has no alert {name!r}", f"known: {', '.join(ALERT_KNOBS)}")
            continue
        for_key, threshold_key = ALERT_KNOBS[name]
        if "for" in change and for_key is None:
            ld.error(
                (*where, "for"),
                f"{name} has no `for` to change (it fires at once)",
                "remove `for`; `threshold` or `disable` apply",
            )
            continue
        if "threshold" in change and threshold_key is None:
            ld.error(
                (*where, "threshold"),
                f"{name} has no threshold to change",
                "only FlintlockdGrpcErrors and FlintlockdRestarting take `threshold`",
            )
            continue
        if "for" in change and parse_duration(change["for"]) is None:
            ld.error(
                (*where, "for"),
                f"{change['for']!r} is not a valid duration",
                "write it like 5m or 1h30m",
            )
            continue
        out.append(
            AlertOverride(
                name,
                bool(change.get("disable", False)),
                change.get("for"),
                change.get("severity"),
                float(change["threshold"]) if "threshold" in change else None,
            )
        )
    return out


def _validation(ld: _Loader, raw: dict[str, Any]) -> Validation:
    from flobs.checks import all_checks

    ids = {c.ID for c in all_checks()}
    for i, check_id in enumerate(raw.get("disable") or []):
        if check_id not in ids:
            ld.error(("validation", "disable", i), f"no check has id {check_id!r}", _ids_hint(ids))
    for i, rule in enumerate(raw.get("ignore") or []):
        for j, check_id in enumerate(rule.get("checks") or []):
            if check_id not in ids:
                ld.error(
                    ("validation", "ignore", i, "checks", j),
                    f"no check has id {check_id!r}",
                    _ids_hint(ids),
                )
    return Validation(
        tuple(raw.get("disable") or ()),
        tuple((r["path"], tuple(r.get("checks") or ())) for r in raw.get("ignore") or ()),
        tuple(raw.get("unmanaged") or ()),
    )


def _ids_hint(ids: set[str]) -> str:
    return "`flobs validate --list-checks` lists them: " + ", ".join(sorted(ids))


def load_extensions(
    doc: dict[str, Any], source: Source, base_dir: Path | None
) -> tuple[Extensions, list[Problem]]:
    """Read and check ``extensions:`` and ``validation:``; problems are located errors."""
    from flobs.artifacts.dashboards import specs

    ld = _Loader(source, base_dir)
    raw = doc.get("extensions") or {}
    files = _rule_files(ld, raw.get("rule_files") or [])
    if raw.get("dashboards_dir"):
        files += _dashboards(ld, raw["dashboards_dir"], (s.uid for s in specs()))
    overrides = raw.get("overrides") or {}
    ext = Extensions(
        tuple(files),
        tuple(_panel_overrides(ld, overrides.get("panels") or {})),
        tuple(_alert_overrides(ld, overrides.get("alerts") or {})),
        _validation(ld, doc.get("validation") or {}),
    )
    return ext, ld.problems


# --------------------------------------------------------------------------- extra scrape jobs


# Jobs flobs writes into a host's prometheus.yml (series.JOB_PRODUCES); a user job of the
# same name would make promtool refuse the file, and the closure check would credit it
# with another job's metrics.
def flobs_job_names() -> frozenset[str]:
    from flobs.artifacts.series import JOB_PRODUCES

    return frozenset(JOB_PRODUCES)


# Applied to every extra job unless it sets its own: one broken exporter must not flood
# the host's TSDB (the same limits flobs' own jobs carry).
EXTRA_JOB_LIMITS: dict[str, int] = {
    "sample_limit": 10000,
    "label_limit": 40,
    "label_name_length_limit": 128,
    "label_value_length_limit": 1024,
}
MAX_EXTRA_SAMPLE_LIMIT = 200000  # the central federate job's own sample_limit


@cache
def _scrape_validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = resources.schema("prometheus.schema.json")
    return Draft202012Validator(schema["properties"]["scrape_configs"]["items"])


ExtraJobProblem = tuple[tuple[str, ...], str, str | None]  # (var path, message, hint)


def extra_jobs(
    raw: dict[str, Any], host_name: str
) -> tuple[list[tuple[str, dict[str, Any], tuple[str, ...]]], list[ExtraJobProblem]]:
    """Check merged ``vars.extra_scrape_jobs``.

    Returns ([(name, complete scrape_config, federate)], problems).
    """
    reserved = flobs_job_names()
    jobs: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
    problems: list[ExtraJobProblem] = []
    for name, spec in sorted(raw.items()):
        if spec is None:
            continue  # switched off for this host
        at = ("extra_scrape_jobs", name)
        if name in reserved:
            problems.append(
                (
                    at,
                    f"host {host_name}: extra scrape job `{name}` has the name of a job flobs "
                    "generates",
                    f"rename it; flobs' jobs are {', '.join(sorted(reserved))}",
                )
            )
            continue
        config = {"job_name": name, **spec["scrape"]}
        for key, value in EXTRA_JOB_LIMITS.items():
            config.setdefault(key, value)
        errors = sorted(_scrape_validator().iter_errors(config), key=lambda e: list(e.path))
        for err in errors:
            problems.append(
                (
                    (*at, "scrape", *map(str, err.absolute_path)),
                    f"host {host_name}: extra scrape job `{name}`: {_short(err)} "
                    "(schemas/prometheus.schema.json)",
                    "write a Prometheus scrape_config without job_name",
                )
            )
        if errors:
            continue
        limit = config["sample_limit"]
        if not 0 < limit <= MAX_EXTRA_SAMPLE_LIMIT:
            problems.append(
                (
                    (*at, "scrape", "sample_limit"),
                    f"host {host_name}: extra scrape job `{name}`: sample_limit {limit} is "
                    f"outside 1..{MAX_EXTRA_SAMPLE_LIMIT}",
                    "0 means unlimited, which lets one exporter flood the host's TSDB",
                )
            )
            continue
        bad_names = [n for n in spec.get("federate") or () if not _is_regex(n)]
        for n in bad_names:
            problems.append(
                (
                    (*at, "federate"),
                    f"host {host_name}: extra scrape job `{name}`: federate entry {n!r} is "
                    "not a valid regular expression",
                    "write a metric name or a name regex like storage_agent_.+",
                )
            )
        if bad_names:
            continue
        jobs.append((name, config, tuple(spec.get("federate") or ())))
    return jobs, problems


def _is_regex(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return True


def static_targets(config: dict[str, Any]) -> list[str]:
    return [str(t) for sc in config.get("static_configs") or [] for t in sc.get("targets") or []]
