"""amtool-config and amtool-routes: pass on the example tree, exact findings when broken."""

from __future__ import annotations

from pathlib import Path

from tests.checks.conftest import Run, fired, rehash
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
        (CONFIG, 62, None, "amtool: field pagerduty_config not found in type config.plain")
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
