"""Alerting checks: amtool over the Alertmanager config and its routing tests, and
unit-test coverage of the central rules."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flobs import tools
from flobs.checks import Check, CheckContext, register
from flobs.checks import kinds as k
from flobs.checks.tools import ToolCheck
from flobs.docwalk import iter_rules
from flobs.problems import Problem, Severity
from flobs.promql import metric_names, parse_error

# amtool 0.25: `Checking 'FILE'  FAILED: yaml: unmarshal errors:\n  line 6: field …`
_FAILED = re.compile(r"FAILED:\s*(?P<msg>.*)", re.DOTALL)
_LINE = re.compile(r"^\s*line (?P<line>\d+): (?P<msg>.*)$", re.MULTILINE)
_NOISE = "Warning: --config.file flag overrides the --alertmanager.url."


def _clean(output: str) -> str:
    return "\n".join(x for x in output.splitlines() if x.strip() and x.strip() != _NOISE)


@register
class AmtoolConfig(ToolCheck):
    """`amtool check-config` accepts the generated Alertmanager config.

    Why: Alertmanager refuses to start (or to reload) with a config it cannot parse,
    and then no alert reaches anyone. amtool is Alertmanager's own parser. Example:
    `url_file` in a webhook for Alertmanager 0.25, which only knows `url`.
    """

    ID = "amtool-config"
    TITLE = "amtool check-config"
    TOOL = "amtool"
    FILES = (k.ALERTMANAGER_CONFIG,)

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        if not k.files(ctx, self.FILES):
            return
        binary = self.binary(ctx)
        if binary is None:
            return
        code, output = tools.run_amtool(binary, ["check-config", k.ALERTMANAGER_CONFIG], ctx.out)
        if code == 0:
            return
        failed = _FAILED.search(output)
        text = _clean(failed.group("msg") if failed else output)
        located = list(_LINE.finditer(text))
        if located:
            for m in located:
                yield ctx.problem(
                    self,
                    k.ALERTMANAGER_CONFIG,
                    f"amtool: {m.group('msg').strip()}",
                    line=int(m.group("line")),
                )
            return
        text = text.replace("amtool: error: failed to validate 1 file(s)", "")
        yield ctx.problem(self, k.ALERTMANAGER_CONFIG, f"amtool: {' '.join(text.split())}")


@register
class AmtoolRoutes(ToolCheck):
    """Every routing test reaches exactly its receivers (`amtool config routes test`).

    Why: a route order or a matcher typo sends pages to the wrong team, or to the
    catch-all receiver nobody reads; Alertmanager itself accepts such a config. The
    tests in `central/alertmanager-routes.test.yml` list, for every alert and every
    label set the fleet gives it, the receivers the inventory asks for; amtool resolves
    each one against `central/alertmanager.yml`. Example: a route for `zone: b` moved
    above the critical route, so zone b's critical alerts no longer page.
    """

    ID = "amtool-routes"
    TITLE = "amtool config routes test"
    TOOL = "amtool"
    FILES = (k.ALERTMANAGER_ROUTES,)
    WORKERS: ClassVar[int] = tools.MAX_WORKERS

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        path = k.ALERTMANAGER_ROUTES
        if not k.files(ctx, self.FILES) or not k.files(ctx, (k.ALERTMANAGER_CONFIG,)):
            return
        doc = k.data(ctx, path)
        if doc is None:
            return  # file-parses reports it
        cases = [
            (i, t)
            for i, t in enumerate(k.seq(k.get(doc, "tests")))
            if isinstance(k.get(t, "labels"), dict) and isinstance(k.get(t, "receivers"), list)
        ]
        binary = self.binary(ctx)
        if binary is None:
            return
        code, _ = tools.run_amtool(binary, ["check-config", k.ALERTMANAGER_CONFIG], ctx.out)
        if code != 0:
            return  # amtool-config reports why; every route test would fail with it

        # Only labels some route matches on decide the receivers: cases that agree on
        # those (and expect the same receivers) are one amtool call. 64 calls become 8
        # for the example fleet; the count grows with routes, not with alerts or hosts.
        names = _routed_labels(k.get(k.data(ctx, k.ALERTMANAGER_CONFIG), "route"))
        calls: dict[tuple[tuple[tuple[str, str], ...], tuple[str, ...]], list[int]] = {}
        for i, test in cases:
            labels = {str(n): str(v) for n, v in test["labels"].items()}
            if names is not None:
                labels = {n: v for n, v in labels.items() if n in names}
            key = (tuple(sorted(labels.items())), tuple(str(r) for r in test["receivers"]))
            calls.setdefault(key, []).append(i)

        def one(key: tuple[tuple[tuple[str, str], ...], tuple[str, ...]]) -> tuple[int, str]:
            labels, receivers = key
            args = [
                "config",
                "routes",
                "test",
                f"--config.file={k.ALERTMANAGER_CONFIG}",
                "--verify.receivers=" + ",".join(receivers),
                # amtool needs one matcher at least; a label no route reads is harmless.
                *(_label_arg(n, v) for n, v in labels or (("alertname", ""),)),
            ]
            return tools.run_amtool(binary, args, ctx.out)

        with ThreadPoolExecutor(max_workers=self.WORKERS) as pool:
            outcomes = dict(zip(calls, pool.map(one, calls), strict=True))
        by_index = dict(cases)
        results = sorted(
            (i, by_index[i], *outcomes[key]) for key, indexes in calls.items() for i in indexes
        )
        for i, test, code, output in results:
            if code == 0:
                continue
            got = _clean(output).splitlines()
            resolved = got[0].strip() if got else "nothing"
            yield ctx.problem(
                self,
                path,
                f"{test.get('name', f'test {i}')}: amtool routes it to {resolved}, "
                f"the test expects {','.join(str(r) for r in test['receivers'])}",
                key_path=("tests", i, "receivers"),
                hint="the routes in central/alertmanager.yml and the inventory's "
                "central.alertmanager.routes disagree; regenerate, or fix the hand edit",
            )


_MATCHER_NAME = re.compile(r"^\s*\{?\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)")


def _routed_labels(route: Any) -> set[str] | None:
    """Label names any route matches on; None when the tree has a shape we cannot read."""
    if not isinstance(route, dict):
        return None
    names: set[str] = set()
    for key in ("match", "match_re"):
        value = route.get(key)
        if value is not None:
            if not isinstance(value, dict):
                return None
            names |= {str(n) for n in value}
    for matcher in k.seq(route.get("matchers")):
        m = _MATCHER_NAME.match(str(matcher))
        if m is None:
            return None
        names.add(m.group(1))
    for child in k.seq(route.get("routes")):
        sub = _routed_labels(child)
        if sub is None:
            return None
        names |= sub
    return names


def _label_arg(name: str, value: str) -> str:
    """One amtool matcher argument: ``name="value"`` with Go escapes."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{escaped}"'


# --------------------------------------------------------------------------- coverage


@dataclass
class _Rule:
    file: str
    key_path: tuple[str | int, ...]
    kind: str  # "alert" | "record"
    name: str
    expr: str


@dataclass
class _Covered:
    firing: set[tuple[str, str]] = field(default_factory=set)  # (file, alert)
    quiet: set[tuple[str, str]] = field(default_factory=set)
    exercised: set[tuple[str, str]] = field(default_factory=set)  # (file, record)


def _rules(ctx: CheckContext, path: str) -> list[_Rule]:
    doc = k.data(ctx, path)
    found: list[_Rule] = []
    for at, rule in iter_rules(doc):
        for kind in ("alert", "record"):
            name = rule.get(kind)
            if isinstance(name, str) and isinstance(rule.get("expr"), str | int | float):
                found.append(_Rule(path, (*at, kind), kind, name, str(rule["expr"])))
    return found


def _names(expr: str) -> set[str]:
    return metric_names(expr) if parse_error(expr) is None else set()


def _loaded(ctx: CheckContext, test_file: str, doc: Any) -> list[str]:
    """The rule files a promtool test file loads (its rule_files are relative to it)."""
    base = posixpath.dirname(test_file)
    found: list[str] = []
    for pattern in k.seq(k.get(doc, "rule_files")):
        full = posixpath.normpath(posixpath.join(base, str(pattern)))
        found += [f for f in ctx.files if fnmatch.fnmatchcase(f, full)]
    return sorted(set(found))


def _coverage(ctx: CheckContext, rule_files: list[str]) -> _Covered:
    covered = _Covered()
    for test_file in k.files(ctx, k.PROMTOOL_TESTS):
        doc = k.data(ctx, test_file)
        files = [f for f in _loaded(ctx, test_file, doc) if f in rule_files]
        loaded = [r for f in files for r in _rules(ctx, f)]
        alerts = {r.name: r for r in loaded if r.kind == "alert"}
        records: dict[str, list[_Rule]] = {}
        for r in loaded:
            if r.kind == "record":
                records.setdefault(r.name, []).append(r)
        for test in k.seq(k.get(doc, "tests")):
            inputs = {
                name
                for s in k.seq(k.get(test, "input_series"))
                for name in _names(str(k.get(s, "series") or ""))
            }
            reads: set[str] = set()
            for art in k.seq(k.get(test, "alert_rule_test")):
                name = k.get(art, "alertname")
                if isinstance(name, str) and name in alerts:
                    kind = covered.firing if k.seq(k.get(art, "exp_alerts")) else covered.quiet
                    kind.add((alerts[name].file, name))
                    reads |= _names(alerts[name].expr)
            for pet in k.seq(k.get(test, "promql_expr_test")):
                reads |= _names(str(k.get(pet, "expr") or ""))
            # A recording rule is exercised when a test reads it (directly or through
            # other recording rules) and does not feed its output in as an input.
            todo = list(reads)
            seen: set[str] = set()
            while todo:
                name = todo.pop()
                if name in seen or name in inputs or name not in records:
                    continue
                seen.add(name)
                for rule in records[name]:
                    covered.exercised.add((rule.file, name))
                    todo += _names(rule.expr)
    return covered


@register
class RuleTestCoverage(Check):
    """Every central alert has a firing and a quiet unit test; every recording rule is exercised.

    Why: promtool runs the tests it is given and says nothing about the rules no test
    touches; an alert that was never seen firing in a test may never fire at all, and one
    never seen quiet may page all day. A recording rule is exercised when a test reads it
    (through a `promql_expr_test` or a tested alert, directly or through other recording
    rules) without feeding its output in as an input series. Below 100 % is an error for
    the rules flobs generates and a warning for rules you add to `central/rules/`. The
    hint gives the coverage figure. Example: an alert added to `central/rules/mine.yml`
    with no test in `central/tests/`.
    """

    ID = "rule-test-coverage"
    TITLE = "unit-test coverage of central rules"
    FILES: ClassVar[tuple[str, ...]] = (k.CENTRAL_RULES, "central/rules/*.yaml")

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        rule_files = k.files(ctx, self.FILES)
        if not rule_files:
            return
        manifest = ctx.manifest or {}
        users = manifest.get("user_files")
        # Rule files an extension adds are listed in `files` too (hashed like the rest),
        # but they are the user's: `user_files[path].origin == "user"`.
        theirs = {
            path
            for path, entry in (users.items() if isinstance(users, dict) else ())
            if isinstance(entry, dict) and entry.get("origin") == "user"
        }
        generated = set(manifest.get("files") or {}) - theirs
        covered = _coverage(ctx, rule_files)
        for group in (True, False):
            files = [f for f in rule_files if (f in generated) is group]
            gaps: list[tuple[_Rule, str]] = []
            total = 0
            for path in files:
                for rule in _rules(ctx, path):
                    key = (path, rule.name)
                    if rule.kind == "alert":
                        total += 2
                        if key not in covered.firing:
                            gaps.append((rule, f"alert {rule.name} has no firing unit test"))
                        if key not in covered.quiet:
                            gaps.append(
                                (
                                    rule,
                                    f"alert {rule.name} has no quiet unit test "
                                    "(one whose exp_alerts is empty)",
                                )
                            )
                    else:
                        total += 1
                        if key not in covered.exercised:
                            message = f"recording rule {rule.name} is not exercised by a unit test"
                            gaps.append((rule, message))
            if not gaps:
                continue
            done = total - len(gaps)
            what = "generated" if group else "your"
            hint = (
                f"{what} central rules are {done}/{total} covered ({done / total:.0%}); "
                "add a case to central/tests/*.yml"
                + ("" if group else " (a warning: these rules are not flobs')")
            )
            for rule, message in gaps:
                yield ctx.problem(
                    self,
                    rule.file,
                    message,
                    key_path=rule.key_path,
                    hint=hint,
                    severity=None if group else Severity.WARNING,
                )
