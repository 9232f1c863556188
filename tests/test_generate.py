"""`flobs generate` on the example inventory and on hostile input, with real promtool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from flobs import yamlio
from flobs.generate import generate
from flobs.output import MANIFEST, sha256
from tests.conftest import EXAMPLE_INVENTORY, REPO, require_major, require_tool
from tests.helpers import prometheus3_external_label, run_flobs

GOLDEN = REPO / "tests" / "golden" / "example"
# The files this test owns as golden; other artifacts have their own golden tests.
GOLDEN_GLOBS = (
    "hosts/*/prometheus.yml",
    "hosts/*/rules/*.yml",
    "hosts/*/exporters/*",
    "central/prometheus.yml",
    "central/targets/*.json",
    "central/alertmanager*.yml",
    # Run artifacts and the Ansible handoff: a refactor of their builders must not
    # change a byte unless it means to.
    "hosts/*/systemd/**/*",
    "central/systemd/**/*",
    "deploy/ansible/*",
    "hosts/*/placed.json",
    "central/placed.json",
)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_golden_files(example_out: Path) -> None:
    produced = {
        rel: data
        for pattern in GOLDEN_GLOBS
        for p in sorted(example_out.glob(pattern))
        if p.is_file()
        for rel, data in [(p.relative_to(example_out).as_posix(), p.read_bytes())]
    }
    if os.environ.get("FLOBS_UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, data in produced.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_bytes(data)
    expected = {
        p.relative_to(GOLDEN).as_posix(): p.read_bytes() for p in GOLDEN.rglob("*") if p.is_file()
    }
    assert sorted(produced) == sorted(expected)
    for rel, data in produced.items():
        assert data.decode() == expected[rel].decode(), f"{rel} differs from its golden file"


@pytest.mark.tools
def test_promtool_accepts_every_prometheus_config(example_out: Path) -> None:
    promtool = require_tool("promtool")
    configs = sorted(str(p) for p in example_out.glob("**/prometheus.yml"))
    assert len(configs) == 7  # six hosts + central
    proc = subprocess.run(
        [promtool, "check", "config", *configs], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("is valid prometheus config file syntax") == 7


@pytest.mark.tools
def test_promtool_accepts_every_rules_file(example_out: Path) -> None:
    promtool = require_tool("promtool")
    rules = sorted(str(p) for p in example_out.glob("**/rules/*.yml"))
    assert any("/hosts/" in r for r in rules)
    proc = subprocess.run(
        [promtool, "check", "rules", *rules], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(rules)


def test_manifest_lists_every_file_with_its_hash(example_out: Path) -> None:
    manifest = json.loads((example_out / MANIFEST).read_text())
    files = _files(example_out)
    del files[MANIFEST]
    assert set(manifest["files"]) == set(files)
    for rel, data in files.items():
        assert manifest["files"][rel] == {"sha256": sha256(data), "size": len(data)}
    assert manifest["inventory"] == {
        "name": "inventory.yaml",
        "sha256": sha256(EXAMPLE_INVENTORY.read_bytes()),
    }


def test_output_is_deterministic_and_location_free(tmp_path: Path, example_out: Path) -> None:
    # Another directory, another working directory: byte-identical output.
    inv = tmp_path / "elsewhere" / "inventory.yaml"
    inv.parent.mkdir()
    shutil.copy(EXAMPLE_INVENTORY, inv)
    generate(inv, tmp_path / "second")
    assert _files(tmp_path / "second") == _files(example_out)
    blob = b"".join(_files(example_out).values())
    assert str(REPO).encode() not in blob and str(tmp_path).encode() not in blob


def test_regenerating_rewrites_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate(EXAMPLE_INVENTORY, out)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    result = generate(EXAMPLE_INVENTORY, out)
    assert result.changes.empty
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_one_label_change_touches_only_that_host_targets_and_manifest(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    text = EXAMPLE_INVENTORY.read_text()
    inv.write_text(text)
    out = tmp_path / "out"
    generate(inv, out)
    before = _files(out)
    inv.write_text(
        text.replace(
            "groups: [eu1-b]\n    labels: {rack: r11}",
            "groups: [eu1-b]\n    labels: {rack: r99}",
            1,
        )
    )
    result = generate(inv, out)
    changed = {rel for rel, data in _files(out).items() if before.get(rel) != data}
    assert changed == set(result.changes.changed)
    host_files = {rel for rel in changed if rel.startswith("hosts/")}
    assert host_files and all(rel.startswith("hosts/fl-eu1-b-01/") for rel in host_files)
    assert changed - host_files == {"central/targets/eu1-b.json", MANIFEST}


HOSTILE_LABELS = {
    "quote": 'say "hi"',
    "newline": "two\nlines",
    "tmpl": "{{ .Values.x }}",
    "dollar": "$HOME ${X}",
    "hash": "# not a comment",
    "uni": "zoné-☃-🚀",
    "colon": "a: b",
    "yes": "yes",
    "empty": "",
}


@pytest.mark.tools
def test_hostile_label_values_round_trip_and_pass_promtool(tmp_path: Path) -> None:
    text = EXAMPLE_INVENTORY.read_text()
    labels = (
        "{"
        + ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in HOSTILE_LABELS.items())
        + "}"
    )
    inv = tmp_path / "inventory.yaml"
    inv.write_text(text.replace("labels: {rack: r01}", f"labels: {labels}", 1))
    out = tmp_path / "out"
    generate(inv, out)
    host = out / "hosts" / "fl-eu1-a-01"
    external = yamlio.load((host / "prometheus.yml").read_text())["global"]["external_labels"]
    for key, value in HOSTILE_LABELS.items():
        # The host runs Prometheus 3 (the default), which `$`-expands these values.
        assert prometheus3_external_label(external[key], {"HOME": "/root", "X": "x"}) == value
    targets = json.loads((out / "central" / "targets" / "eu1-a.json").read_text())
    entry = next(t for t in targets if t["labels"]["host"] == "fl-eu1-a-01")
    assert {k: entry["labels"][k] for k in HOSTILE_LABELS} == HOSTILE_LABELS
    promtool = require_major("promtool", 3)
    proc = subprocess.run(
        [promtool, "check", "config", str(host / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_only_selected_hosts_are_regenerated(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    text = EXAMPLE_INVENTORY.read_text()
    inv.write_text(text)
    out = tmp_path / "out"
    generate(inv, out)
    before = _files(out)
    # Change two hosts, regenerate only one of them: the other keeps its old files.
    inv.write_text(text.replace("rack: r01}", "rack: r77}"))
    generate(inv, out, hosts=["fl-eu1-a-01"])
    after = _files(out)
    assert after["hosts/fl-eu1-a-01/prometheus.yml"] != before["hosts/fl-eu1-a-01/prometheus.yml"]
    assert after["hosts/fl-eu1-a-02/prometheus.yml"] == before["hosts/fl-eu1-a-02/prometheus.yml"]
    manifest = json.loads(after[MANIFEST])
    assert manifest["files"]["hosts/fl-eu1-a-02/prometheus.yml"]["sha256"] == sha256(
        after["hosts/fl-eu1-a-02/prometheus.yml"]
    )


# ---- the CLI, through its real entry point -------------------------------------------


def test_cli_bad_inventory_exits_2_with_location_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_flobs(
        "generate", "-i", "tests/cases/port-collision-9090/inventory.yaml", "-o", out, cwd=REPO
    )
    assert res.code == 2
    assert res.stdout == ""
    assert res.stderr.startswith(
        "tests/cases/port-collision-9090/inventory.yaml:4:30: $.defaults.local_prometheus.listen:"
    )
    assert "Traceback" not in res.stderr
    assert "nothing was written" in res.stderr
    assert not out.exists()


def test_cli_check_reports_drift_then_clean(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_flobs("generate", "-i", EXAMPLE_INVENTORY, "-o", out)
    assert first.code == 0, first.stderr
    assert first.stdout == ""
    clean = run_flobs("generate", "-i", EXAMPLE_INVENTORY, "-o", out, "--check")
    assert (clean.code, clean.stdout) == (0, "")
    assert "up to date" in clean.stderr
    path = out / "central" / "prometheus.yml"
    path.write_text(path.read_text().replace("scrape_interval: 30s", "scrape_interval: 1m", 1))
    drift = run_flobs("generate", "-i", EXAMPLE_INVENTORY, "-o", out, "--check")
    assert drift.code == 1
    assert "changed: central/prometheus.yml" in drift.stdout
    assert "-  scrape_interval: 1m\n+  scrape_interval: 30s" in drift.stdout
    assert path.read_text().count("scrape_interval: 1m") == 1  # --check wrote nothing


def test_renaming_the_inventory_changes_only_the_manifest(tmp_path: Path) -> None:
    """The file name lives in manifest.json only, never in the per-file headers."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "inventory.yaml").write_bytes(EXAMPLE_INVENTORY.read_bytes())
    first = run_flobs("generate", "-i", "a/inventory.yaml", "-o", "out", cwd=tmp_path)
    assert first.code == 0, first.stderr
    before = _files(tmp_path / "out")
    (tmp_path / "a" / "inventory.yaml").rename(tmp_path / "b" / "fleet.yaml")
    check = run_flobs("generate", "-i", "b/fleet.yaml", "-o", "out", "--check", cwd=tmp_path)
    assert check.code == 1
    assert [
        ln for ln in check.stdout.splitlines() if ln[:1] in "+-" and ln[:3] not in "+++---"
    ] == [
        '-    "name": "inventory.yaml",',
        '+    "name": "fleet.yaml",',
    ]
    assert check.stdout.startswith("changed: manifest.json\n")
    assert check.stderr.endswith(
        f"0 added, 1 changed, 0 removed, {len(before) - 1} unchanged (6 hosts, 0 rendered)\n"
    )
    second = run_flobs("generate", "-i", "b/fleet.yaml", "-o", "out", cwd=tmp_path)
    assert second.code == 0, second.stderr
    after = _files(tmp_path / "out")
    assert sorted(p for p in before if before[p] != after[p]) == [MANIFEST]
    assert json.loads(after[MANIFEST])["inventory"]["name"] == "fleet.yaml"
    assert not any(b"inventory.yaml" in data for data in after.values())


def test_cli_unknown_host_is_usage_error(tmp_path: Path) -> None:
    res = run_flobs("generate", "-i", EXAMPLE_INVENTORY, "-o", tmp_path / "o", "--host", "nope")
    assert res.code == 2
    assert "--host names unknown host(s): nope" in res.stderr
    assert "Traceback" not in res.stderr


def test_cli_missing_inventory_file(tmp_path: Path) -> None:
    res = run_flobs("generate", "-i", tmp_path / "missing.yaml", "-o", tmp_path / "o")
    assert res.code == 2
    assert "missing.yaml: file not found" in res.stderr


def test_hostile_cluster_name_cannot_break_generated_files(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(
        EXAMPLE_INVENTORY.read_text().replace(
            "cluster: eu1 ", 'cluster: "eu1\\nscrape_configs: []\\u2028\\u001b" '
        )
    )
    out = tmp_path / "out"
    generate(inv, out)
    for path in out.rglob("*.y*ml"):
        assert yamlio.load(path.read_text()) is not None, path
    config = yamlio.load((out / "central" / "prometheus.yml").read_text())
    assert config["global"]["external_labels"]["cluster"] == "eu1\nscrape_configs: []\u2028\x1b"
    assert config["scrape_configs"]  # the newline did not inject an empty list
