"""Run artifacts: every unit and drop-in passes the real `systemd-analyze verify`,
and each flag is the inventory's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flobs import layout
from flobs.artifacts.units import quote
from flobs.generate import generate
from flobs.versions import retention_in_config
from tests.conftest import EXAMPLE_INVENTORY, require_tool
from tests.deploy.sysroot import SYSTEM_UNITS, make_root


def _unit_sets(out: Path) -> dict[str, dict[str, bytes]]:
    """Per machine (host name or "central"): path under /etc/systemd/system → bytes."""
    dirs = [*sorted((out / "hosts").iterdir()), out / "central"]
    return {
        d.name: {
            p.relative_to(d / "systemd").as_posix(): p.read_bytes()
            for p in sorted((d / "systemd").rglob("*"))
            if p.is_file()
        }
        for d in dirs
    }


def _verify(root: Path, units: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    systemd_analyze = require_tool("systemd-analyze")
    if not (SYSTEM_UNITS / "prometheus.service").exists():
        require_tool(
            "a Debian prometheus.service in /lib/systemd/system (apt-get install prometheus)"
        )
    make_root(root, units, layout.BIN.values())
    names = sorted({u.split("/")[0].removesuffix(".d") for u in units})
    return subprocess.run(
        [systemd_analyze, "verify", "--man=no", f"--root={root}", *names],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.tools
def test_every_generated_unit_passes_systemd_analyze_verify(
    example_out: Path, tmp_path: Path
) -> None:
    sets = _unit_sets(example_out)
    assert sorted(sets["fl-eu1-b-03"]) == [
        "flobs-alloy.service",
        "flobs-otelcol.service",
        "prometheus-node-exporter.service.d/flobs.conf",
        "prometheus-process-exporter.service.d/flobs.conf",
        "prometheus.service.d/flobs.conf",
    ]
    assert "flobs-promtail.service" in sets["fl-eu1-a-01"]
    assert sorted(sets["central"]) == ["prometheus.service.d/flobs.conf"]
    for machine, units in sets.items():
        r = _verify(tmp_path / machine, units)
        # verify exits 0 on an unknown key too, and only says so on stderr.
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), machine


@pytest.mark.tools
def test_verify_harness_reports_a_broken_unit(tmp_path: Path) -> None:
    """The check above would catch a mistake: an unknown key and a missing binary."""
    broken = b"[Service]\nExecStart=\nExecStart=/usr/bin/prometheus\nNoNewPrivilege=yes\n"
    r = _verify(tmp_path / "a", {"prometheus.service.d/flobs.conf": broken})
    assert "Unknown key 'NoNewPrivilege' in section [Service]" in r.stderr
    missing = b"[Service]\nExecStart=/opt/nowhere/otelcol\n[Install]\nWantedBy=multi-user.target\n"
    r = _verify(tmp_path / "b", {"flobs-otelcol.service": missing})
    assert r.returncode != 0
    assert "Command /opt/nowhere/otelcol is not executable" in r.stderr


def _exec_start(data: bytes) -> list[str]:
    text = data.decode()
    body = text.split("ExecStart=", 2)[-1].split("\n\n")[0]
    lines = []
    for line in body.splitlines():
        lines.append(line.strip().removesuffix("\\").strip())
        if not line.endswith("\\"):
            break
    return lines


def test_local_prometheus_listens_on_its_inventory_port(example_out: Path) -> None:
    drop_in = (
        example_out / "hosts/fl-eu1-b-03/systemd/prometheus.service.d/flobs.conf"
    ).read_bytes()
    assert drop_in.decode().count("ExecStart=\n") == 1  # clears the package's ExecStart
    # Prometheus 3.13 (the default) reads retention from prometheus.yml: no flag.
    assert _exec_start(drop_in) == [
        "/usr/bin/prometheus",
        "--config.file=/etc/flobs/prometheus/prometheus.yml",
        "--web.listen-address=0.0.0.0:9191",  # the host's own override, not 9090
        "--storage.tsdb.path=/var/lib/prometheus/metrics2",
    ]
    central = (example_out / "central/systemd/prometheus.service.d/flobs.conf").read_bytes()
    assert _exec_start(central) == [
        "/usr/bin/prometheus",
        "--config.file=/etc/flobs/central/prometheus.yml",
        "--web.listen-address=0.0.0.0:9090",
        "--storage.tsdb.path=/var/lib/prometheus/metrics2",
    ]


def test_retention_is_a_flag_where_the_config_file_cannot_hold_it(tmp_path: Path) -> None:
    assert not retention_in_config("2.42")
    assert not retention_in_config("3.7.2")
    assert retention_in_config("3.8")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(
        EXAMPLE_INVENTORY.read_text().replace(
            "    listen: 0.0.0.0:9091          # the central federates from <address>:9091",
            "    listen: 0.0.0.0:9091\n    retention: 9d\n    version: '2.42'",
        )
    )
    out = tmp_path / "out"
    generate(inv, out)
    argv = _exec_start(
        (out / "hosts/fl-eu1-a-01/systemd/prometheus.service.d/flobs.conf").read_bytes()
    )
    assert argv[-1] == "--storage.tsdb.retention.time=9d"
    assert "retention" not in (out / "hosts/fl-eu1-a-01/prometheus.yml").read_text()


@pytest.mark.parametrize(
    ("arg", "rendered"),
    [
        ("--storage.tsdb.path=/var/lib/p", "--storage.tsdb.path=/var/lib/p"),
        ("/data/with space", '"/data/with space"'),
        ("/p/100%", '"/p/100%%"'),  # % is a specifier, $ a variable, for systemd
        ("/p/$HOME", '"/p/$$HOME"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("line\nbreak", '"line\\x0abreak"'),
    ],
)
def test_quote_escapes_what_systemd_would_expand(arg: str, rendered: str) -> None:
    assert quote(arg) == rendered


@pytest.mark.tools
def test_quoted_arguments_reach_the_process_unchanged(tmp_path: Path) -> None:
    """systemd splits a quoted ExecStart back into the original arguments."""
    systemd_analyze = require_tool("systemd-analyze")
    args = ["/data/with space", "/p/100%", "/p/$HOME", 'a"b\\c']
    unit = tmp_path / "t.service"
    unit.write_text("[Service]\nExecStart=/bin/echo " + " ".join(quote(a) for a in args) + "\n")
    r = subprocess.run(
        [systemd_analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Failed to" not in r.stderr and "Invalid" not in r.stderr, r.stderr
