"""amtool-config and amtool-routes: pass on the example tree, exact findings when broken."""

from __future__ import annotations

from pathlib import Path

from tests.checks.conftest import Run, fired, read_yaml, rehash, write_yaml
from tests.conftest import require_tool

CONFIG = "central/alertmanager.yml"
ROUTES = "central/alertmanager-routes.test.yml"


def _replace(out: Path, rel: str, old: str, new: str) -> None:
    path = out / rel
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    rehash(out)


def _findings(result, check: str) -> list[tuple[str | None, int | None, int | None, str]]:  # type: ignore[no-untyped-def]
    return [(p.file, p.line, p.col, p.message) for p in result.problems if p.check_id == check]


def test_clean_tree_passes_both(tree: Path, run: Run) -> None:
    require_tool("amtool")
    result = run(tree, tools="auto")
    assert _findings(result, "amtool-config") == []
    assert _findings(result, "amtool-routes") == []


def test_unknown_field_is_located(tree: Path, run: Run) -> None:
    require_tool("amtool")
    _replace(tree, CONFIG, "    pagerduty_configs:", "    pagerduty_config:")
    result = run(tree, tools="auto")
    assert fired(result) == {"amtool-config"}
    assert _findings(result, "amtool-config") == [
        (CONFIG, 63, None, "amtool: field pagerduty_config not found in type config.plain")
    ]


def test_config_error_without_line(tree: Path, run: Run) -> None:
    require_tool("amtool")
    _replace(tree, CONFIG, "  receiver: platform-tickets\n", "  receiver: nobody\n")
    result = run(tree, tools="auto")
    # The routing tests are not run against a config amtool refuses.
    assert fired(result) == {"amtool-config"}
    assert _findings(result, "amtool-config") == [
        (CONFIG, None, None, 'amtool: undefined receiver "nobody" used in route')
    ]


def test_route_order_change_is_caught_by_the_routing_tests(tree: Path, run: Run) -> None:
    require_tool("amtool")
    # Zone b's chat route above the pager route: zone b's critical alerts stop paging.
    text = (tree / CONFIG).read_text(encoding="utf-8")
    pager = '    - receiver: platform-pager\n      matchers:\n        - "severity=\\"critical\\""\n'
    assert pager in text
    text = text.replace(pager, "")
    text = text.replace("inhibit_rules:", pager.replace("    - ", "    - ", 1) + "inhibit_rules:")
    (tree / CONFIG).write_text(text, encoding="utf-8")
    rehash(tree)
    result = run(tree, tools="auto")
    assert fired(result) == {"amtool-routes"}
    found = _findings(result, "amtool-routes")
    assert found[0] == (
        ROUTES,
        27,
        7,
        "FlobsHostDown on fl-eu1-b-01: amtool routes it to zone-b-chat, "
        "the test expects platform-pager",
    )
    # Every critical alert of zone b's hosts, and only those.
    assert {m.split(":")[0] for _, _, _, m in found} == {
        f"{name} on {host}"
        for name in (
            "FlobsHostDown",
            "FlintlockdDown",
            "FirecrackerVmmPanic",
        )
        for host in ("fl-eu1-b-01", "fl-eu1-b-02")
    }


# --------------------------------------------------------------------------- coverage

TESTS = "central/tests/flobs-alerts.test.yml"


def _drop_tests(out: Path, names: set[str]) -> None:
    doc = read_yaml(out, TESTS)
    before = len(doc["tests"])
    doc["tests"] = [t for t in doc["tests"] if t["name"] not in names]
    assert len(doc["tests"]) == before - len(names)
    write_yaml(out, TESTS, doc)
    rehash(out)


def _coverage(result):  # type: ignore[no-untyped-def]
    return [
        (p.file, p.line, p.col, p.severity.value, p.message, p.hint)
        for p in result.problems
        if p.check_id == "rule-test-coverage"
    ]


def test_generated_rules_are_fully_covered(tree: Path, run: Run) -> None:
    assert _coverage(run(tree)) == []


def test_missing_quiet_case_is_an_error_at_the_alert(tree: Path, run: Run) -> None:
    _drop_tests(tree, {"FlintlockdDown: scrape working"})
    result = run(tree)
    assert fired(result) == {"rule-test-coverage"}
    assert _coverage(result) == [
        (
            "central/rules/flobs-alerts.yml",
            35,
            16,
            "error",
            "alert FlintlockdDown has no quiet unit test (one whose exp_alerts is empty)",
            "generated central rules are 58/59 covered (98%); add a case to central/tests/*.yml",
        )
    ]


def test_missing_firing_case_is_an_error(tree: Path, run: Run) -> None:
    _drop_tests(tree, {"FlintlockdDown: scrape failing"})
    assert [m for _, _, _, _, m, _ in _coverage(run(tree))] == [
        "alert FlintlockdDown has no firing unit test"
    ]


def test_recording_rule_fed_as_input_is_not_exercised(tree: Path, run: Run) -> None:
    # FlobsHostsMissing's cases feed cluster:hosts_reporting:count in directly; only
    # the dedicated case evaluates the rule itself.
    _drop_tests(tree, {"cluster:hosts_reporting:count: counts hosts whether up or down"})
    assert _coverage(run(tree)) == [
        (
            "central/rules/flobs-recording.yml",
            20,
            17,
            "error",
            "recording rule cluster:hosts_reporting:count is not exercised by a unit test",
            "generated central rules are 58/59 covered (98%); add a case to central/tests/*.yml",
        )
    ]


def test_recording_rule_read_through_another_is_exercised(tree: Path, run: Run) -> None:
    # host_method:grpc_server_errors:ratio_rate5m has no promql_expr_test of its own:
    # FlintlockdGrpcErrors' cases read it.
    result = run(tree)
    assert _coverage(result) == []
    _drop_tests(
        tree,
        {
            "FlintlockdGrpcErrors: server errors above the threshold",
            "FlintlockdGrpcErrors: server errors below the threshold",
            "FlintlockdGrpcErrors: client errors (NotFound) do not count",
        },
    )
    messages = [m for _, _, _, _, m, _ in _coverage(run(tree))]
    assert messages == [
        "alert FlintlockdGrpcErrors has no firing unit test",
        "alert FlintlockdGrpcErrors has no quiet unit test (one whose exp_alerts is empty)",
        "recording rule host_method:grpc_server_errors:ratio_rate5m is not exercised by a "
        "unit test",
    ]


def test_user_rules_without_tests_are_a_warning(tree: Path, run: Run) -> None:
    (tree / "central/rules/mine.yml").write_text(
        "groups:\n  - name: mine\n    rules:\n      - alert: MyAlert\n        expr: up == 0\n"
        "      - record: job:up:sum\n        expr: sum by (job) (up)\n",
        encoding="utf-8",
    )
    result = run(tree)
    assert fired(result) == set()
    hint = (
        "your central rules are 0/3 covered (0%); add a case to central/tests/*.yml "
        "(a warning: these rules are not flobs')"
    )
    assert _coverage(result) == [
        ("central/rules/mine.yml", 4, 16, "warning", "alert MyAlert has no firing unit test", hint),
        (
            "central/rules/mine.yml",
            4,
            16,
            "warning",
            "alert MyAlert has no quiet unit test (one whose exp_alerts is empty)",
            hint,
        ),
        (
            "central/rules/mine.yml",
            6,
            17,
            "warning",
            "recording rule job:up:sum is not exercised by a unit test",
            hint,
        ),
    ]
