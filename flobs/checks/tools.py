"""Real tools over the generated files: promtool (promtail/alloy/otelcol: logs, otelcol).

``--tools off`` skips these checks, ``auto`` (default) notes a missing tool on stderr,
``require`` makes a missing tool an error before any check runs (see flobs.validate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import ClassVar

from flobs import tools, versions
from flobs.checks import Check, CheckContext, _body_key, register
from flobs.checks import kinds as k
from flobs.errors import ToolFailure
from flobs.problems import Problem, Severity


class ToolCheck(Check):
    TOOL: ClassVar[str]

    def binary(self, ctx: CheckContext) -> str | None:
        """The tool's path; None when tools are off or it is missing under `auto`.

        flobs.validate notes a missing tool once (auto) or stops before any check
        (require); the check itself only needs to skip.
        """
        if ctx.tools == "off":
            return None
        found = tools.find_tool(self.TOOL)
        if found is None and ctx.tools == "require":
            raise ToolFailure([self.TOOL], None, f"{self.TOOL} is not on PATH")
        return found

    def findings(self, ctx: CheckContext, found: Sequence[tools.ToolFinding]) -> Iterator[Problem]:
        for f in found:
            yield ctx.problem(
                self,
                f.path,
                f"{self.TOOL}: {f.message}",
                line=f.line,
                severity=Severity.WARNING if f.lint else None,
            )


class PromtoolCheck(ToolCheck):
    TOOL = "promtool"
    # Which promtool checks a file follows the Prometheus version the inventory gives.
    USES_INVENTORY: ClassVar[bool] = True
    ARGS: ClassVar[tuple[str, ...]]
    KIND: ClassVar[str] = "check"

    def check(self, ctx: CheckContext) -> Iterator[Problem]:
        paths = k.files(ctx, self.FILES)
        if not paths or ctx.tools == "off":
            return
        by_major: dict[int, list[str]] = {}
        for path in paths:
            major = versions.prometheus_major(k.prometheus_version(ctx, path))
            by_major.setdefault(major, []).append(path)
        available = tools.promtools()
        if not available:
            unknown = tools.find_tool("promtool")
            if unknown is None:
                if ctx.tools == "require":
                    raise ToolFailure(["promtool"], None, "promtool is not on PATH")
                return  # flobs.validate notes the missing tool once
            # It would not say its version: check everything with it, and say so.
            ctx.notes.append(f"{self.ID}: {unknown} --version printed no version; used for all")
            available = {major: unknown for major in by_major}
        for major, members in sorted(by_major.items()):
            binary = self.promtool_for(ctx, major, available, len(members))
            if binary is None:
                continue

            def run(todo: list[str], binary: str = binary) -> list[Problem]:
                # Unit tests name their rule files relative to themselves: run each one.
                groups = {p: [p] for p in todo} if self.KIND == "test" else _same_body(ctx, todo)
                found = tools.run_promtool(
                    binary, self.ARGS, sorted(groups), ctx.out, kind=self.KIND
                )
                return list(
                    self.findings(
                        ctx, [replace(f, path=member) for f in found for member in groups[f.path]]
                    )
                )

            if self.KIND == "test":
                # A test's verdict depends on the rules it loads: every central file.
                inputs = [*members, *ctx.index.select(("central/**/*",))]

                def run_tests(
                    run: Callable[[list[str]], list[Problem]] = run, members: list[str] = members
                ) -> list[Problem]:
                    return run(members)

                yield from ctx.cached_tree(self, inputs, run_tests)
            else:
                # A config's or rules file's verdict depends on that file alone.
                yield from ctx.cached_per_file(self, members, run)

    def promtool_for(
        self, ctx: CheckContext, major: int, available: dict[int, str], count: int
    ) -> str | None:
        """promtool of ``major``; else a newer one, saying so; else None (not checked).

        A newer promtool reads an older version's files; an older one refuses a newer
        version's keys (2.x on `fallback_scrape_protocol`), so it is never a stand-in.
        Under ``--tools require`` a missing major is an error.
        """
        if major in available:
            return available[major]
        if ctx.tools == "require":
            raise ToolFailure(
                ["promtool"],
                None,
                f"no promtool {major}.x found for {count} file(s) written for Prometheus "
                f"{major} (found: {_describe(available)}); `make tools` builds promtool 3",
            )
        newer = sorted(m for m in available if m > major)
        if not newer:
            ctx.notes.append(
                f"{self.ID}: no promtool {major}.x found: {count} file(s) for Prometheus "
                f"{major} were not checked by promtool (found: {_describe(available)}; "
                "an older promtool refuses newer keys)"
            )
            return None
        ctx.notes.append(
            f"{self.ID}: no promtool {major}.x found: {count} file(s) for Prometheus {major} "
            f"were checked with promtool {newer[0]}.x ({available[newer[0]]})"
        )
        return available[newer[0]]


def _describe(available: dict[int, str]) -> str:
    return ", ".join(f"{major}.x at {path}" for major, path in sorted(available.items())) or "none"


def _same_body(ctx: CheckContext, paths: list[str]) -> dict[str, list[str]]:
    """Representative → every file with the same body after the header comment.

    10,000 hosts' rules files differ only in that comment; promtool needs to see each
    distinct body once (same header length, so its line numbers hold for all of them).
    """
    by_key: dict[tuple[int, bytes], list[str]] = {}
    for path in paths:
        try:
            text = (ctx.out / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = path  # unreadable: its own group; promtool reports it
        by_key.setdefault(_body_key(text), []).append(path)
    return {members[0]: members for members in by_key.values()}


@register
class PromtoolConfig(PromtoolCheck):
    """`promtool check config --syntax-only` accepts every Prometheus config.

    Why: promtool is Prometheus' own parser: what it refuses, Prometheus refuses at
    start. Many files go to one promtool call, and each failure is mapped back to its
    file. `--syntax-only` because credential files live on the target hosts, not here.
    Example: `scrape_timeout` longer than `scrape_interval`.
    """

    ID = "promtool-config"
    TITLE = "promtool check config"
    FILES = k.PROMETHEUS_CONFIGS
    ARGS = ("check", "config", "--syntax-only")


@register
class PromtoolRules(PromtoolCheck):
    """`promtool check rules` accepts every rules file (hosts' and the centre's).

    Why: a rules file Prometheus cannot load takes all its rules with it. promtool also
    reports duplicate rules (as a warning). Example: a recording rule name with a `-`.
    """

    ID = "promtool-rules"
    TITLE = "promtool check rules"
    FILES = k.RULE_FILES
    ARGS = ("check", "rules")


@register
class PromtoolTests(PromtoolCheck):
    """`promtool test rules` passes for every unit test in `central/tests/`.

    Why: the tests prove each alert fires on the series it is meant for, with the
    labels its routing and runbook link expect. Example: an alert whose `for:` was
    raised so that the test's expected firing time no longer holds.
    """

    ID = "promtool-test"
    TITLE = "promtool test rules"
    FILES = k.PROMTOOL_TESTS
    ARGS = ("test", "rules")
    KIND = "test"


# Which tools check which generated files. promtail, alloy and the collector are run
# by the logs/otelcol checks; they are listed so that `--tools require` and the notes
# of `--tools auto` cover them too.
TOOLS_FOR_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("promtool", (*k.PROMETHEUS_CONFIGS, *k.RULE_FILES, *k.PROMTOOL_TESTS)),
    ("promtail", (k.PROMTAIL,)),
    ("alloy", (k.ALLOY,)),
    ("otelcol", (k.OTELCOL,)),
    ("amtool", (k.ALERTMANAGER_CONFIG, k.ALERTMANAGER_ROUTES)),
)


def tools_needed(ctx: CheckContext) -> list[str]:
    """The tools the files present in OUT call for."""
    return [tool for tool, patterns in TOOLS_FOR_FILES if k.files(ctx, patterns)]
