"""process-exporter counts the VMMs of the providers a host runs (vars.providers)."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

from flobs import yamlio
from flobs.generate import render_tree
from flobs.inventory import load_fleet
from tests.helpers import MINIMAL_INVENTORY

CONFIG = "hosts/h1/exporters/process-exporter.yml"


def _tree(tmp_path: Path, providers: list[str] | None) -> dict[str, bytes]:
    doc: dict[str, Any] = copy.deepcopy(MINIMAL_INVENTORY)
    if providers is not None:
        doc["defaults"] = {"providers": providers}
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yamlio.dump(doc))
    return render_tree(load_fleet(inv).fleet)


def _groups(tree: dict[str, bytes]) -> list[tuple[str, list[str]]]:
    doc = yamlio.load(tree[CONFIG].decode())
    return [(g["name"], g["exe"]) for g in doc["process_names"]]


def test_default_provider_gets_only_the_firecracker_group(tmp_path: Path) -> None:
    assert _groups(_tree(tmp_path, None)) == [
        ("flintlockd", ["flintlockd"]),
        ("firecracker", ["firecracker"]),
        ("containerd", ["containerd"]),
    ]


def test_cloud_hypervisor_only_host_counts_no_firecracker(tmp_path: Path) -> None:
    assert _groups(_tree(tmp_path, ["cloud-hypervisor"])) == [
        ("flintlockd", ["flintlockd"]),
        ("cloud-hypervisor", ["cloud-hypervisor", "cloud-hypervisor-static"]),
        ("containerd", ["containerd"]),
    ]


def test_adding_a_provider_changes_exactly_the_process_groups(tmp_path: Path) -> None:
    before = _tree(tmp_path, ["firecracker"])
    after = _tree(tmp_path, ["firecracker", "cloud-hypervisor"])
    assert sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p)) == [
        CONFIG
    ]
    diff = [
        line
        for line in difflib.ndiff(
            before[CONFIG].decode().splitlines(), after[CONFIG].decode().splitlines()
        )
        if line[0] in "+-"
    ]
    assert diff == [
        "+   - name: cloud-hypervisor",
        "+     exe:",
        "+       - cloud-hypervisor",
        "+       - cloud-hypervisor-static",
    ]
