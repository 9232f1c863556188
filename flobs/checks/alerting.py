"""Alert delivery checks: amtool over the Alertmanager config and its routing tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from flobs import tools
from flobs.checks import CheckContext, register
from flobs.checks import kinds as k
from flobs.checks.tools import ToolCheck
from flobs.problems import Problem

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
