"""flintlockd's logrus JSON lines (flintlock-facts.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flobs.sim.logs import LogrusWriter
from flobs.sim.machines import fleet_of_microvms


def test_lines_are_logrus_json_with_flintlock_fields(tmp_path: Path) -> None:
    vms = fleet_of_microvms("s", ("firecracker", "cloud-hypervisor"))
    log = tmp_path / "deep" / "flintlockd.log"
    writer = LogrusWriter("s", log, vms)
    written = sum(writer.write_tick(1_795_000_000 + i) for i in range(200))
    raw = log.read_text().splitlines()
    assert len(raw) == written > 100
    vmids = {f"{vm.namespace}/{vm.name}/{vm.uid}" for vm in vms}
    levels = set()
    for text in raw:
        line = json.loads(text)
        assert list(line) == sorted(line)  # logrus marshals a map: sorted keys
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["time"])
        assert line["msg"]
        assert line["vmid"] in vmids
        assert line["component"] in ("app", "plans")
        levels.add(line["level"])
    assert {"info", "error"} <= levels


def test_appends_and_is_deterministic(tmp_path: Path) -> None:
    vms = fleet_of_microvms("s", ("firecracker",))
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("existing\n")
    for path in (a, b):
        w = LogrusWriter("s", path, vms)
        for i in range(50):
            w.write_tick(1_795_000_000 + i)
    assert a.read_text().startswith("existing\n")
    assert a.read_text().removeprefix("existing\n") == b.read_text()
