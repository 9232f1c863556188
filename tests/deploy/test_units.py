"""Run artifacts: every unit and drop-in passes the real `systemd-analyze verify`,
and each flag is the inventory's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from flobs import layout, yamlio
from flobs.artifacts.units import quote
from flobs.generate import generate
from flobs.versions import retention_in_config
from tests.conftest import EXAMPLE_INVENTORY, free_port, require_tool
from tests.deploy.inventories import remote_write_example
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
    assert sorted(sets["central"]) == [
        "prometheus-alertmanager.service.d/flobs.conf",
        "prometheus.service.d/flobs.conf",
    ]
    for machine, units in sets.items():
        r = _verify(tmp_path / machine, units)
        # verify exits 0 on an unknown key too, and only says so on stderr.
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), machine


def _keys(text: str) -> dict[str, str]:
    """key → value of a unit file, booleans in one spelling (systemd takes yes/true/on/1)."""
    out = {}
    for line in text.splitlines():
        if "=" in line and line[0] not in "#;":
            key, value = line.split("=", 1)
            out[key] = {"true": "yes", "on": "yes", "1": "yes"}.get(value, value)
    return out


def test_drop_ins_never_loosen_the_package_hardening(example_out: Path) -> None:
    """A drop-in sets no hardening key the packaged unit already sets to another value
    (Debian's prometheus.service has ProtectHome=true; read-only would loosen it)."""
    confs = sorted(example_out.glob("**/systemd/*.service.d/flobs.conf"))
    assert sum(c.parent.name == "prometheus.service.d" for c in confs) == 7
    for conf in confs:
        package = SYSTEM_UNITS / conf.parent.name.removesuffix(".d")
        if not package.exists():
            require_tool(f"Debian's {package.name} in {SYSTEM_UNITS}")
        ours, theirs = _keys(conf.read_text()), _keys(package.read_text())
        hardening = {k for k in ours if k.startswith(("Protect", "Private", "NoNew"))}
        assert hardening, conf
        both = hardening & set(theirs)
        loosened = {k: (theirs[k], ours[k]) for k in both if ours[k] != theirs[k]}
        assert loosened == {}, conf


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


@pytest.fixture(scope="module")
def rw_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rw")
    out = d / "out"
    generate(remote_write_example(d / "inventory.yaml"), out)
    return out


@pytest.mark.tools
def test_remote_write_centre_units_pass_systemd_analyze_verify(
    rw_out: Path, tmp_path: Path
) -> None:
    units = _unit_sets(rw_out)["central"]
    assert sorted(units) == [
        "flobs-vmalert.service",
        "prometheus-alertmanager.service.d/flobs.conf",
        "prometheus.service.d/flobs.conf",
    ]
    r = _verify(tmp_path, units)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_alertmanager_drop_in_runs_the_generated_config_without_gossip(
    example_out: Path, rw_out: Path
) -> None:
    drop_in = "central/systemd/prometheus-alertmanager.service.d/flobs.conf"
    text = (example_out / drop_in).read_text()
    # Debian's unit runs `prometheus-alertmanager $ARGS`: cleared, not added to.
    assert text.count("ExecStart=\n") == 1
    assert _exec_start(text.encode()) == [
        "/usr/bin/prometheus-alertmanager",
        "--config.file=/etc/flobs/central/alertmanager.yml",
        "--web.listen-address=127.0.0.1:9093",
        "--storage.path=/var/lib/prometheus/alertmanager",
        "--cluster.listen-address=",
    ]
    assert _exec_start((rw_out / drop_in).read_bytes())[-3:] == [
        "--cluster.listen-address=10.0.9.1:9094",
        "--cluster.peer=10.0.9.2:9094",
        "--cluster.peer=am3.eu1:9094",
    ]


def test_no_alertmanager_unit_for_alertmanagers_flobs_does_not_configure(
    tmp_path: Path,
) -> None:
    inv = tmp_path / "inventory.yaml"
    text = EXAMPLE_INVENTORY.read_text()
    start = text.index("  alertmanager:")
    inv.write_text(text[:start] + "  alertmanager:\n    urls: [https://am.eu1:9093]\n")
    out = tmp_path / "out"
    generate(inv, out)
    assert sorted(p.name for p in (out / "central/systemd").iterdir()) == ["prometheus.service.d"]
    assert not (out / "central/alertmanager.yml").exists()


def test_vmalert_unit_has_the_flags_of_vmalert_args(rw_out: Path) -> None:
    """The same flags as central/vmalert.args: rules in the layout, and each secret file
    loaded by systemd for the dynamic user (%d: the credentials directory)."""
    args = [
        line
        for line in (rw_out / "central/vmalert.args").read_text().splitlines()
        if not line.startswith("#")
    ]
    unit = (rw_out / "central/systemd/flobs-vmalert.service").read_text()
    argv = _exec_start(unit.encode())
    assert argv[0] == "/usr/bin/vmalert"
    assert argv[1] == '"-rule=/etc/flobs/central/rules/*.yml"'
    assert args[0] == "-rule=rules/*.yml"
    secret = "-remoteWrite.basicAuth.passwordFile="
    assert f"{secret}/etc/flobs/secrets/vm 100%" in args
    assert f"{secret}%d/remoteWrite.basicAuth.passwordFile" in argv
    expected = [
        a if not a.endswith("/vm 100%") else a.split("=")[0] + "=%d/" + a.split("=")[0][1:]
        for a in args[1:]
    ]
    assert argv[2:] == expected
    assert [line for line in unit.splitlines() if line.startswith("LoadCredential=")] == [
        f"LoadCredential={p}.basicAuth.passwordFile:/etc/flobs/secrets/vm 100%%"
        for p in ("datasource", "remoteWrite", "remoteRead")
    ]
    # The playbook reloads it when the rules change: SIGHUP re-reads them.
    assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in unit
    for hardening in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert f"\n{hardening}\n" in unit
    assert "-httpListenAddr=127.0.0.1:8880" in argv  # loopback by default


@pytest.mark.tools
def test_vmalert_accepts_the_unit_flags(rw_out: Path, tmp_path: Path) -> None:
    """The real vmalert parses every flag of the unit and the rules it names (-dryRun)."""
    vmalert = require_tool("vmalert")
    creds = tmp_path / "creds"
    creds.mkdir()
    argv = []
    for arg in _exec_start((rw_out / "central/systemd/flobs-vmalert.service").read_bytes())[1:]:
        arg = arg.strip('"').replace("/etc/flobs/central/", f"{rw_out}/central/")
        if "%d/" in arg:
            name = arg.split("%d/")[1]
            (creds / name).write_text("pw\n")
            arg = arg.replace("%d", str(creds))
        argv.append(arg)
    r = subprocess.run(
        [vmalert, *argv, "-dryRun"], capture_output=True, text=True, check=False, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.tools
def test_alertmanager_starts_with_the_drop_in_flags(example_out: Path, tmp_path: Path) -> None:
    """The drop-in's ExecStart, paths moved into the test: gossip is off (no 9094)."""
    from flobs.live.processes import Supervisor

    binary = require_tool("prometheus-alertmanager", "alertmanager")
    drop_in = example_out / "central/systemd/prometheus-alertmanager.service.d/flobs.conf"
    port = free_port()
    argv = [
        a.replace("/etc/flobs/central/", f"{example_out}/central/")
        .replace("/var/lib/prometheus/alertmanager", str(tmp_path / "data"))
        .replace("127.0.0.1:9093", f"127.0.0.1:{port}")
        for a in _exec_start(drop_in.read_bytes())[1:]
    ]
    with Supervisor(tmp_path / "logs") as sup:
        sup.start("alertmanager", [binary, *argv])
        sup.wait_ready("alertmanager", f"http://127.0.0.1:{port}/-/ready", timeout=60)
        status = httpx.get(f"http://127.0.0.1:{port}/api/v2/status", timeout=10).json()
    assert status["cluster"]["status"] == "disabled"
    # It loaded flobs' config: the same receivers, by name.
    generated = yamlio.load((example_out / "central/alertmanager.yml").read_text())
    loaded = yamlio.load(status["config"]["original"])
    assert [r["name"] for r in loaded["receivers"]] == [r["name"] for r in generated["receivers"]]


@pytest.mark.tools
def test_alertmanagers_with_peers_gossip(example_out: Path, tmp_path: Path) -> None:
    """Two Alertmanagers from drop-ins with central.alertmanager.cluster: each sees both."""
    import time

    from flobs.generate import render_tree
    from flobs.inventory import load_fleet
    from flobs.live.processes import Supervisor

    binary = require_tool("prometheus-alertmanager", "alertmanager")
    web = [free_port(), free_port()]
    gossip = [free_port(), free_port()]
    text = EXAMPLE_INVENTORY.read_text()
    listen = "    listen: 127.0.0.1:9093\n"
    assert text.count(listen) == 1
    with Supervisor(tmp_path / "logs") as sup:
        for i in (0, 1):
            inv = tmp_path / f"inventory{i}.yaml"
            cluster = f"{{listen: '127.0.0.1:{gossip[i]}', peers: ['127.0.0.1:{gossip[1 - i]}']}}"
            inv.write_text(
                text.replace(listen, f"    listen: 127.0.0.1:{web[i]}\n    cluster: {cluster}\n")
            )
            tree = render_tree(load_fleet(inv).fleet)
            drop_in = tree["central/systemd/prometheus-alertmanager.service.d/flobs.conf"]
            argv = [
                a.replace("/etc/flobs/central/", f"{example_out}/central/").replace(
                    "/var/lib/prometheus/alertmanager", str(tmp_path / f"data{i}")
                )
                for a in _exec_start(drop_in)[1:]
            ]
            assert f"--cluster.peer=127.0.0.1:{gossip[1 - i]}" in argv
            sup.start(f"am{i}", [binary, *argv])
        for i in (0, 1):
            sup.wait_ready(f"am{i}", f"http://127.0.0.1:{web[i]}/-/ready", timeout=60)
        deadline = time.monotonic() + 90
        peers: list[list[str]] = [[], []]
        while time.monotonic() < deadline:
            for i in (0, 1):
                status = httpx.get(f"http://127.0.0.1:{web[i]}/api/v2/status", timeout=10)
                peers[i] = sorted(p["address"] for p in status.json()["cluster"]["peers"])
            if all(len(p) == 2 for p in peers):
                break
            time.sleep(0.5)
    both = sorted(f"127.0.0.1:{port}" for port in gossip)
    assert peers == [both, both]


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
