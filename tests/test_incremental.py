"""Incremental `flobs generate`: a host is rendered again exactly when its inputs or its
files changed, and the tree is always the one a full generate writes."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.fleet import inventory as bench_inventory
from flobs import layout, yamlio
from flobs.artifacts import HOST_MODULES
from flobs.artifacts.ansible import placed_records
from flobs.errors import UsageError
from flobs.generate import generate, render_hosts, render_tree
from flobs.incremental import canonical, host_digests
from flobs.inventory import load_fleet
from flobs.model import Fleet
from flobs.output import MANIFEST, _manifest_json
from tests.conftest import EXAMPLE_INVENTORY
from tests.helpers import run_flobs


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yamlio.dump(doc), encoding="utf-8")
    return path


REMOTE_WRITE = {
    "mode": "remote_write",
    "remote_write": {"url": "https://store.example/api/v1/push"},
    "url": "https://store.example",
}


def _example() -> Fleet:
    return load_fleet(EXAMPLE_INVENTORY).fleet


# ---- the digest covers everything a host renderer is handed ---------------------------


def test_host_renderers_are_handed_only_the_scope_and_the_host() -> None:
    # The digest is computed from these two objects; a renderer given the Fleet could
    # read other hosts or central settings the digest does not cover.
    for module in HOST_MODULES:
        params = inspect.signature(module.host_files).parameters
        annotations = [str(p.annotation) for p in params.values()]
        assert annotations == ["HostScope", "Host"], module.__name__


def _leaves(value: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf field inside dataclasses and tuples, as a path of names/indexes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [
            leaf
            for f in dataclasses.fields(value)
            for leaf in _leaves(getattr(value, f.name), (*path, f.name))
        ]
    if isinstance(value, tuple):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, (*path, str(i)))]
    return [path]


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, bytes):
        return value + b"x"
    return "x"  # None: any value differs


def _replace(value: Any, path: tuple[str, ...]) -> Any:
    if not path:
        return _changed(value)
    head, rest = path[0], path[1:]
    if isinstance(value, tuple):
        i = int(head)
        return (*value[:i], _replace(value[i], rest), *value[i + 1 :])
    return dataclasses.replace(value, **{head: _replace(getattr(value, head), rest)})


def test_every_field_of_the_scope_and_the_host_changes_the_digest() -> None:
    # Proves canonical() drops no field, whatever fields are added to the model later.
    inv = EXAMPLE_INVENTORY.parent / "extensions" / "inventory.yaml"
    fleet = load_fleet(inv).fleet
    host = fleet.hosts[0]
    scope = fleet.host_scope
    assert scope.extra_jobs_produce  # the example's extra jobs: a fleet-wide input
    for obj in (scope, host):
        before = canonical(obj)
        leaves = _leaves(obj)
        assert len(leaves) > (15 if obj is scope else 60)
        for leaf in leaves:
            assert canonical(_replace(obj, leaf)) != before, leaf


def test_canonical_tells_apart_what_repr_alone_would_confuse() -> None:
    assert canonical((1,)) != canonical((1.0,)) != canonical(("1",))
    assert canonical(("a", "b")) != canonical(("a,b",))
    assert canonical((True,)) != canonical(("True",))


def _dir(tmp_path: Path, name: str) -> Path:
    # Another file name each time: only manifest.json names the inventory, so no digest.
    return tmp_path / f"{name}.yaml"


def test_fleet_wide_inputs_reach_every_host_and_only_those(tmp_path: Path) -> None:
    doc = bench_inventory(4)
    doc["central"]["prometheus"] |= REMOTE_WRITE
    base = host_digests(load_fleet(_write(_dir(tmp_path, "a"), doc)).fleet)
    # One host's label: only that host.
    label = copy.deepcopy(doc)
    label["hosts"][1]["labels"]["rack"] = "r77"
    after = host_digests(load_fleet(_write(_dir(tmp_path, "b"), label)).fleet)
    assert {n for n in base if base[n] != after[n]} == {"fl-bench-b-00001"}
    # An extra job on host 2 sends names to the centre: in remote_write mode every host's
    # keep rule lists them, so every host's digest (and prometheus.yml) changes.
    job = copy.deepcopy(doc)
    job["hosts"][2]["vars"] = {
        "extra_scrape_jobs": {
            "agent": {
                "scrape": {"static_configs": [{"targets": ["127.0.0.1:9500"]}]},
                "federate": ["agent_requests_total"],
            }
        }
    }
    fleet = load_fleet(_write(_dir(tmp_path, "c"), job)).fleet
    after = host_digests(fleet)
    assert all(base[n] != after[n] for n in base)
    tree = render_tree(fleet)
    assert "agent_requests_total" in tree["hosts/fl-bench-a-00000/prometheus.yml"].decode()
    # A central endpoint hosts ship to: every host.
    logs = copy.deepcopy(doc)
    logs["central"]["loki"]["url"] = "https://logs.example/loki/api/v1/push"
    after = host_digests(load_fleet(_write(_dir(tmp_path, "d"), logs)).fleet)
    assert all(base[n] != after[n] for n in base)
    # Grafana is read by fleet files only: no host renders again.
    grafana = copy.deepcopy(doc)
    grafana["central"]["grafana"]["url"] = "https://grafana2.example"
    assert host_digests(load_fleet(_write(_dir(tmp_path, "e"), grafana)).fleet) == base


# ---- what a run renders, keeps and reports ----------------------------------------------


def test_unchanged_hosts_are_not_rendered_and_one_label_renders_one_host(tmp_path: Path) -> None:
    doc = bench_inventory(5)
    inv = _write(tmp_path / "inventory.yaml", doc)
    out = tmp_path / "out"
    first = generate(inv, out)
    assert len(first.rendered_hosts) == 5
    again = generate(inv, out)
    assert again.rendered_hosts == ()
    assert again.changes.empty
    assert again.changes.unchanged == len(_files(out))
    doc["hosts"][3]["labels"]["rack"] = "r99"
    _write(inv, doc)
    one = generate(inv, out)
    assert one.rendered_hosts == ("fl-bench-d-00003",)
    assert _files(out) == _full(inv, tmp_path / "full")


def _full(inv: Path, into: Path) -> dict[str, bytes]:
    generate(inv, into, full=True)
    return _files(into)


@pytest.mark.parametrize("same_size", [False, True])
def test_a_hand_edit_of_an_unchanged_host_is_found_by_hash(tmp_path: Path, same_size: bool) -> None:
    inv = _write(tmp_path / "inventory.yaml", bench_inventory(3))
    out = tmp_path / "out"
    generate(inv, out)
    target = out / "hosts" / "fl-bench-b-00001" / "prometheus.yml"
    st_before = target.stat()
    data = target.read_bytes()
    edited = data.replace(b"scrape_interval: 15s", b"scrape_interval: 16s", 1)
    if not same_size:
        edited += b"# mine\n"
    assert edited != data and (len(edited) == len(data)) == same_size
    target.write_bytes(edited)
    # Same size and the old mtime: only the hash can tell.
    os.utime(target, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    check = generate(inv, out, check=True)
    assert check.changes.changed == ["hosts/fl-bench-b-00001/prometheus.yml"]
    assert check.rendered_hosts == ("fl-bench-b-00001",)
    generate(inv, out)
    assert target.read_bytes() == data


def test_a_tampered_host_record_renders_that_host_again(tmp_path: Path) -> None:
    inv = _write(tmp_path / "inventory.yaml", bench_inventory(3))
    out = tmp_path / "out"
    generate(inv, out)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["hosts"]["fl-bench-c-00002"]["digest"] = "0" * 64
    manifest["hosts"]["fl-bench-a-00000"]["files"] = ["central/prometheus.yml"]  # not its own
    (out / MANIFEST).write_text(json.dumps(manifest))
    result = generate(inv, out)
    assert result.rendered_hosts == ("fl-bench-a-00000", "fl-bench-c-00002")
    assert _files(out) == _full(inv, tmp_path / "full")


def test_full_renders_every_host(tmp_path: Path) -> None:
    inv = _write(tmp_path / "inventory.yaml", bench_inventory(3))
    generate(inv, tmp_path / "out")
    result = generate(inv, tmp_path / "out", full=True)
    assert len(result.rendered_hosts) == 3 and result.changes.empty


def test_a_pool_renders_the_same_bytes_as_one_process() -> None:
    fleet = _example()
    one = render_hosts(fleet, fleet.hosts, workers=1)
    two = render_hosts(fleet, fleet.hosts, workers=2)
    assert list(two) == list(one) and two == one


# ---- incremental == full, on random inventories and random edits ------------------------

LABEL_TEXT = st.text(alphabet="ab $\"'{}#:é\n", max_size=5)


@st.composite
def inventories(draw: st.DrawFn) -> dict[str, Any]:
    doc = bench_inventory(draw(st.integers(1, 4)))
    for host in doc["hosts"]:
        host["labels"]["team"] = draw(LABEL_TEXT)
    if draw(st.booleans()):
        doc["central"]["prometheus"] |= REMOTE_WRITE
    return doc


def _extra_job(name: str, metric: str) -> dict[str, Any]:
    return {
        name: {
            "scrape": {"static_configs": [{"targets": ["127.0.0.1:9500"]}]},
            "federate": [metric],
        }
    }


def _edit_inventory(doc: dict[str, Any], edit: str, n: int, text: str) -> None:
    hosts = doc["hosts"]
    host = hosts[n % len(hosts)]
    if edit == "label":
        host["labels"]["team"] = text
    elif edit == "add-host":
        # A new index: names and addresses stay unique after removals.
        index = 1 + max(int(h["address"].rsplit(".", 1)[1]) for h in hosts)
        hosts.append(bench_inventory(index + 1)["hosts"][-1])
    elif edit == "remove-host" and len(hosts) > 1:
        hosts.remove(host)
    elif edit == "rename-host":
        host["name"] = host["name"] + "-new"
    elif edit == "cluster":
        doc["cluster"] = "bench2"
    elif edit == "logs-url":
        doc["central"]["loki"]["url"] = "https://logs2.example/loki/api/v1/push"
    elif edit == "extra-job":
        host.setdefault("vars", {})["extra_scrape_jobs"] = _extra_job("agent", "agent_x_total")
    elif edit == "scrape-interval":
        host.setdefault("vars", {})["scrape_interval"] = "20s"


def _edit_out(out: Path, edit: str, n: int) -> None:
    host_files = sorted(p for p in (out / "hosts").rglob("*") if p.is_file())
    target = host_files[n % len(host_files)]
    if edit == "append":
        target.write_bytes(target.read_bytes() + b"# hand edit\n")
    elif edit == "flip":
        st_before = target.stat()
        data = bytearray(target.read_bytes())
        data[0] = ord("!") if data[0] != ord("!") else ord("#")
        target.write_bytes(bytes(data))
        os.utime(target, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    elif edit == "delete":
        target.unlink()
    elif edit == "manifest-digest":
        manifest = json.loads((out / MANIFEST).read_text())
        name = sorted(manifest["hosts"])[n % len(manifest["hosts"])]
        manifest["hosts"][name]["digest"] = "f" * 64
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


INVENTORY_EDITS = st.sampled_from(
    [
        "label",
        "add-host",
        "remove-host",
        "rename-host",
        "cluster",
        "logs-url",
        "extra-job",
        "scrape-interval",
    ]
)
OUT_EDITS = st.sampled_from(["append", "flip", "delete", "manifest-digest"])


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    doc=inventories(),
    inventory_edits=st.lists(st.tuples(INVENTORY_EDITS, st.integers(0, 9), LABEL_TEXT), max_size=3),
    out_edits=st.lists(st.tuples(OUT_EDITS, st.integers(0, 99)), max_size=2),
)
# The edits incremental generate most needs to notice, whatever hypothesis draws.
@example(doc=bench_inventory(2), inventory_edits=[], out_edits=[("append", 3)])
@example(doc=bench_inventory(2), inventory_edits=[], out_edits=[("flip", 5)])
@example(
    doc={
        **bench_inventory(3),
        "central": {
            **bench_inventory(1)["central"],
            "prometheus": {"listen": "0.0.0.0:9090", **REMOTE_WRITE},
        },
    },
    inventory_edits=[("extra-job", 1, "")],
    out_edits=[],
)
def test_incremental_generate_writes_the_tree_a_full_generate_writes(
    tmp_path_factory: pytest.TempPathFactory,
    doc: dict[str, Any],
    inventory_edits: list[tuple[str, int, str]],
    out_edits: list[tuple[str, int]],
) -> None:
    work = tmp_path_factory.mktemp("incr")
    inv = _write(work / "inventory.yaml", doc)
    out = work / "out"
    generate(inv, out)
    for edit, n, text in inventory_edits:
        _edit_inventory(doc, edit, n, text)
    _write(inv, doc)
    for edit, n in out_edits:
        _edit_out(out, edit, n)
    full = _full(inv, work / "full")
    check = generate(inv, out, check=True)
    assert check.changes.empty == (_files(out) == full)
    generate(inv, out)
    assert _files(out) == full
    assert generate(inv, out, check=True).changes.empty


# ---- the fast writers are the slow ones' equals -------------------------------------------

PATH_TEXT = st.text(alphabet='ab/é"\\\u2028\x01 ', min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    files=st.dictionaries(PATH_TEXT, st.tuples(st.text("0123abcdef", max_size=4), st.integers(0))),
    hosts=st.dictionaries(PATH_TEXT, st.tuples(PATH_TEXT, st.lists(PATH_TEXT, max_size=3))),
    extra=st.dictionaries(PATH_TEXT, st.lists(st.integers(), max_size=2), max_size=2),
)
def test_the_manifest_is_what_json_dumps_with_indent_2_writes(
    files: dict[str, tuple[str, int]],
    hosts: dict[str, tuple[str, list[str]]],
    extra: dict[str, list[int]],
) -> None:
    doc = {
        "generator": "flobs",
        **extra,
        "hosts": {n: {"digest": d, "files": f} for n, (d, f) in hosts.items()},
        "files": {p: {"sha256": h, "size": n} for p, (h, n) in files.items()},
    }
    assert _manifest_json(doc) == json.dumps(doc, indent=2, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_comment_safe_escapes_exactly_controls_and_unicode_line_breaks(text: str) -> None:
    def one(c: str) -> str:
        unsafe = (ord(c) < 0x20 and c != "\t") or ord(c) in yamlio._ESCAPE_EXTRA
        return f"\\u{ord(c):04x}" if unsafe else c

    assert yamlio.comment_safe(text) == "".join(one(c) for c in text)


def test_a_host_directory_swapped_for_a_symlink_is_not_trusted(tmp_path: Path) -> None:
    inv = _write(tmp_path / "inventory.yaml", bench_inventory(2))
    out = tmp_path / "out"
    generate(inv, out)
    host_dir = out / "hosts" / "fl-bench-b-00001"
    elsewhere = tmp_path / "elsewhere"
    host_dir.rename(elsewhere)  # the same bytes, outside OUT
    host_dir.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UsageError, match="is a symlink"):
        generate(inv, out, check=True)


def test_cli_says_how_many_hosts_it_rendered_and_full_renders_all(tmp_path: Path) -> None:
    inv = _write(tmp_path / "inventory.yaml", bench_inventory(3))
    out = tmp_path / "out"
    first = run_flobs("generate", "-i", inv, "-o", out)
    assert (first.code, first.stdout) == (0, "")
    assert first.stderr.endswith("removed, 0 unchanged (3 hosts, 3 rendered)\n")
    summary = "0 added, 0 changed, 0 removed, 53 unchanged (3 hosts, {} rendered)\n"
    again = run_flobs("generate", "-i", inv, "-o", out)
    assert (again.code, again.stdout, again.stderr) == (0, "", f"wrote {out}: {summary.format(0)}")
    full = run_flobs("generate", "-i", inv, "-o", out, "--full", "--check")
    assert (full.code, full.stdout) == (0, "")
    assert full.stderr == f"{out} is up to date: {summary.format(3)}"


def test_placed_records_per_machine_equal_those_of_the_whole_tree() -> None:
    # render_host writes a host's placed.json from its own files: the same as the
    # playbook's records computed over the whole tree.
    tree = render_tree(_example())
    placed = {p: d for p, d in tree.items() if p.endswith("/" + layout.PLACED_SOURCE)}
    assert len(placed) == len(_example().hosts) + 1  # every host and the centre
    others = {p: d for p, d in tree.items() if p not in placed}
    assert placed_records(others) == placed
