"""The freshness query, checked by promtool itself on Prometheus 2.x and 3.x."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from flobs.live.verify import freshness_query
from tests.conftest import require_major

MAJORS = (2, 3)

pytestmark = pytest.mark.tools

# Two hosts, two recording series each (same labels apart from the name, as flobs'
# host:* series are). h1 keeps reporting; h2's series stopped at 2m and 3m.
SERIES = [
    {"series": 'host:a{host="h1"}', "values": "1x10"},
    {"series": 'host:b{host="h1"}', "values": "1x10"},
    {"series": 'host:a{host="h2"}', "values": "1 1 1"},
    {"series": 'host:b{host="h2"}', "values": "1 1 1 1"},
]


def _promtool_test(tmp_path: Path, expr: str, expected: list[dict[str, object]]) -> None:
    (tmp_path / "rules.yml").write_text("groups: []\n")
    doc = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": SERIES,
                "promql_expr_test": [{"expr": expr, "eval_time": "4m30s", "exp_samples": expected}],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("major", MAJORS)
def test_ages_come_from_sample_timestamps(tmp_path: Path, major: int) -> None:
    promtool = require_major("promtool", major)
    expr = freshness_query(["host:a", "host:b"])
    # h1's newest sample is at 4m (30 s old); h2's newest is host:b at 3m (90 s old).
    expected = [
        {"labels": '{host="h1"}', "value": 30},
        {"labels": '{host="h2"}', "value": 90},
    ]
    _promtool_test(tmp_path, expr, expected)
    proc = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("major", MAJORS)
def test_the_old_shape_reads_zero_which_is_why_it_is_gone(tmp_path: Path, major: int) -> None:
    # timestamp() around label_replace() is the evaluation time: every host "0 s old".
    promtool = require_major("promtool", major)
    old = (
        'time() - max by (host) (timestamp(label_replace({__name__=~"host:.+"}, '
        '"flobs_series", "$1", "__name__", "(.+)")))'
    )
    _promtool_test(
        tmp_path,
        old,
        [{"labels": '{host="h1"}', "value": 0}, {"labels": '{host="h2"}', "value": 0}],
    )
    proc = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
