"""placed.json: the record the playbook leaves on a machine, from which its next run
knows what to remove (docs/deploy.md, "Files a machine no longer gets")."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flobs import layout
from flobs.artifacts.ansible import placed_records, record


def test_record_names_each_destination_and_what_its_removal_needs() -> None:
    placed = record(
        "host",
        [
            "promtail.yml",
            "rules/flobs-local.yml",
            "systemd/flobs-promtail.service",
            "systemd/prometheus-node-exporter.service.d/flobs.conf",
            "exporters/node_exporter-web.yml",
            "placed.json",  # the record itself is not in the record
        ],
    )["placed"]
    assert placed == [
        {"path": "/etc/flobs/node_exporter/web.yml", "notify": []},
        {
            "path": "/etc/flobs/prometheus/rules/flobs-local.yml",
            "notify": ["reload prometheus.service"],
        },
        {"path": "/etc/flobs/promtail/promtail.yml", "notify": ["restart flobs-promtail.service"]},
        # A unit of flobs' own is stopped first; a drop-in's service runs on without it.
        {"path": "/etc/systemd/system/flobs-promtail.service", "notify": ["systemd daemon-reload"]},
        {
            "path": "/etc/systemd/system/prometheus-node-exporter.service.d/flobs.conf",
            "notify": ["systemd daemon-reload", "restart prometheus-node-exporter.service"],
        },
    ]


def test_centre_rules_also_reload_vmalert() -> None:
    placed = record("central", ["rules/flobs-alerts.yml", "systemd/flobs-vmalert.service"])
    assert placed["placed"] == [
        {
            "path": "/etc/flobs/central/rules/flobs-alerts.yml",
            "notify": ["reload prometheus.service", "reload flobs-vmalert.service"],
        },
        {"path": "/etc/systemd/system/flobs-vmalert.service", "notify": ["systemd daemon-reload"]},
    ]


def test_one_record_per_machine_directory(example_out: Path) -> None:
    tree = {
        p.relative_to(example_out).as_posix(): p.read_bytes()
        for p in example_out.rglob("*")
        if p.is_file()
    }
    records = placed_records(tree)
    hosts = sorted(p.name for p in (example_out / "hosts").iterdir())
    assert sorted(records) == ["central/placed.json", *(f"hosts/{h}/placed.json" for h in hosts)]
    assert records["central/placed.json"] == (example_out / "central/placed.json").read_bytes()
    paths = [e["path"] for e in json.loads(records["hosts/fl-eu1-b-03/placed.json"])["placed"]]
    assert "/etc/flobs/alloy/config.alloy" in paths
    assert "/etc/flobs/promtail/promtail.yml" not in paths


def test_only_flobs_paths_may_be_removed() -> None:
    owned = re.compile(layout.OWNED_PATH)
    escape = re.compile(layout.NOT_OWNED_PATH)

    def removable(path: str) -> bool:
        return bool(owned.match(path)) and not escape.search(path)

    assert removable("/etc/flobs/promtail/promtail.yml")
    assert removable("/etc/systemd/system/flobs-promtail.service")
    assert removable("/etc/systemd/system/prometheus.service.d/flobs.conf")
    assert not removable("/etc/systemd/system/ssh.service")
    assert not removable("/etc/systemd/system/prometheus.service.d/override.conf")
    assert not removable("/etc/flobs/../passwd")
    assert not removable("/etc/flobs/./../passwd")
    assert not removable("/etc/prometheus/prometheus.yml")
    assert not removable("/etc/flobsx/a")
    # Which services the playbook stops: units of flobs' own, named by their path.
    own_unit = re.compile(layout.OWN_UNIT_PATH)
    assert own_unit.match("/etc/systemd/system/flobs-promtail.service")
    assert not own_unit.match("/etc/systemd/system/ssh.service")
    assert not own_unit.match("/etc/systemd/system/prometheus.service.d/flobs.conf")
    assert not own_unit.match("/etc/flobs/x/flobs-a.service")
