"""`flobs demo`'s exit code: a host's failing recording rule is a finding, not a pass."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import flobs.commands.demo as demo_command
from flobs.cli import app
from flobs.live.demo import DemoResult, LocalRuleFailure
from flobs.live.verify import HostStatus, VerifyReport


class _Live:
    webhook = None

    def stores(self) -> dict[str, str | None]:
        return {"prometheus": "http://127.0.0.1:1", "alertmanager": None}


def _fake_run_demo(failures: tuple[LocalRuleFailure, ...]) -> Any:
    @contextlib.contextmanager
    def run_demo(hosts: int, workdir: Path, **_: Any) -> Iterator[tuple[Any, Any]]:
        report = VerifyReport(prometheus="http://127.0.0.1:1", mode="federation", stale_after=60)
        report.hosts.append(HostStatus("demo-1", "present", 12, 1.0, ""))
        result = DemoResult(
            fleet=None,  # type: ignore[arg-type]  # the command does not read it
            inventory=workdir / "inventory.yaml",
            out=workdir / "out",
            central_url="http://127.0.0.1:1",
            report=report,
            waited_seconds=1.0,
            local_rule_failures=failures,
        )
        yield result, _Live()

    return run_demo


@pytest.mark.parametrize(
    ("failures", "code"),
    [
        ((), 0),
        ((LocalRuleFailure("demo-1", "host:x:rate5m", "vector cannot contain metrics"),), 1),
    ],
)
def test_a_failing_local_rule_makes_the_demo_exit_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failures: tuple[LocalRuleFailure, ...],
    code: int,
) -> None:
    monkeypatch.setattr(demo_command, "run_demo", _fake_run_demo(failures))
    r = CliRunner().invoke(app, ["demo", "--hosts", "1", "--workdir", str(tmp_path)])
    assert r.exit_code == code, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("error: ")]
    assert lines == [f"error: {f.host}: local rule {f.rule} fails: {f.error}" for f in failures]
