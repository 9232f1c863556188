"""Hostile inventories and hand-edited files through the real entry points.

An unbounded file, an alias bomb, a recursive anchor, deep nesting or an odd tag is
a located input error (exit 2) for an inventory, and a located ``file-parses``
finding (exit 1, never 3) for a file `validate` reads.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from flobs.validate import validate
from tests.helpers import run_flobs

HEAD = "apiVersion: flobs/v1\ncluster: c\n"
TAIL = (
    "hosts: [{name: h1, address: 10.0.0.1}]\n"
    "central: {prometheus: {}, grafana: {url: https://g.example}, single_host: true}\n"
)
BOMB = "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
    f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]\n" for i in range(1, 9)
)


def test_inventory_from_dev_zero_stops(tmp_path: Path) -> None:
    start = time.monotonic()
    result = run_flobs("generate", "-i", "/dev/zero", "-o", tmp_path / "out")
    assert time.monotonic() - start < 20
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "/dev/zero: larger than 16 MiB, the limit for an inventory\n"
        "    hint: a 10,000-host inventory is about 1.2 MB: check that -i names the inventory\n"
        "error: 1 problem in the input; nothing was written\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("body", "located"),
    [
        (
            BOMB,
            "inv.yaml:6:5: $.x3[8]: invalid YAML: aliases expand the document by more than "
            "10,000 nodes (an alias bomb?)\n"
            "    hint: write the values out, or alias fewer, smaller anchors\n",
        ),
        (
            "x: &x {y: *x}\n",
            "inv.yaml:3:4: $.x.y: invalid YAML: an alias refers to the anchor that contains it "
            "(a recursive structure)\n"
            "    hint: flobs reads finite data only: copy the values instead of the alias\n",
        ),
        (
            "x: " + "[" * 3000 + "]" * 3000 + "\n",
            "inv.yaml:3:103: invalid YAML: nested deeper than 100 levels\n"
            "    hint: no flobs file nests this deep; flatten the structure\n",
        ),
        (
            "x: !!binary aGk=\n",
            "inv.yaml:3:4: invalid YAML: explicit tag `!!binary` is not supported\n"
            "    hint: flobs reads text only: write the value as a plain string, "
            "without !!binary\n",
        ),
    ],
    ids=["alias-bomb", "recursive-alias", "deep-nesting", "binary-tag"],
)
def test_hostile_inventory_is_a_located_exit_2(tmp_path: Path, body: str, located: str) -> None:
    (tmp_path / "inv.yaml").write_text(HEAD + body + TAIL, encoding="utf-8")
    start = time.monotonic()
    result = run_flobs("generate", "-i", "inv.yaml", "-o", "out", cwd=tmp_path)
    assert time.monotonic() - start < 20  # interpreter start included; the load is < 1 s
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == located + "error: 1 problem in the input; nothing was written\n"


def test_str_tag_is_honoured_in_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(
        HEAD.replace("cluster: c", "cluster: !!str 0755") + TAIL, encoding="utf-8"
    )
    result = run_flobs("generate", "-q", "-i", "inv.yaml", "-o", "out", cwd=tmp_path)
    assert (result.code, result.stdout) == (0, "")
    assert 'cluster: "0755"' in (tmp_path / "out/hosts/h1/prometheus.yml").read_text()


@pytest.mark.parametrize(
    ("file", "text", "line", "col", "message"),
    [
        (
            "hosts/fl-eu1-a-01/prometheus.yml",
            BOMB,
            4,
            5,
            "aliases expand the document by more than 10,000 nodes (an alias bomb?)",
        ),
        (
            "hosts/fl-eu1-a-01/promtail.yml",
            "clients: &c [*c]\n",
            1,
            10,
            "an alias refers to the anchor that contains it (a recursive structure)",
        ),
        (
            "grafana/dashboards/flobs-fleet.json",
            "[" * 5000 + "]" * 5000,
            1,
            101,
            "nested deeper than 100 levels",
        ),
        (
            "hosts/fl-eu1-a-01/otelcol.yaml",
            "receivers: !!binary aGk=\n",
            1,
            12,
            "explicit tag `!!binary` is not supported",
        ),
    ],
    ids=["alias-bomb", "recursive-alias", "deep-json", "binary-tag"],
)
def test_hostile_hand_edit_is_a_located_finding(
    example_out: Path, tmp_path: Path, file: str, text: str, line: int, col: int, message: str
) -> None:
    out = tmp_path / "out"
    shutil.copytree(example_out, out)
    (out / file).write_text(text, encoding="utf-8")
    start = time.monotonic()
    result = validate(out, tools="off")
    assert time.monotonic() - start < 30
    parse = [
        (p.file, p.line, p.col, p.message) for p in result.problems if p.check_id == "file-parses"
    ]
    assert parse == [(file, line, col, f"does not parse: {message}")]
    assert result.failed
