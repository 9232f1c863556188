"""deploy/ansible/: syntax, a check run, and a real run into a temporary root that
places every file where docs/deploy.md says; a second run changes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flobs import yamlio
from flobs.generate import generate
from tests.conftest import EXAMPLE_INVENTORY, REPO, require_major, require_tool
from tests.deploy.inventories import remote_write_example

pytestmark = pytest.mark.tools  # ansible-playbook, promtool, otelcol

# Promtail hosts on Prometheus 3 and 2, one with Alloy, and the centre: every row of
# the layout, and each promtool major.
LIMIT = "fl-eu1-a-01,fl-eu1-a-02,fl-eu1-b-03,flobs-central"


def _ansible_playbook() -> str:
    found = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    return found or require_tool("ansible-playbook")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ansible") / "out"
    generate(EXAMPLE_INVENTORY, out)
    return out


def _run(
    out: Path,
    root: Path,
    *extra: str,
    tools: dict[str, str] | None = None,
    limit: str = LIMIT,
) -> subprocess.CompletedProcess[str]:
    ansible_dir = out / "deploy" / "ansible"
    extra_vars = {
        "flobs_root": f"{root}/{{{{ inventory_hostname }}}}",
        "flobs_manage_services": False,
        "flobs_become": False,
        "ansible_python_interpreter": sys.executable,
        **(tools or {}),
    }
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(root.parent / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_FORKS": "3",
    }
    return subprocess.run(
        [
            _ansible_playbook(),
            "-i",
            str(ansible_dir / "inventory.yml"),
            str(ansible_dir / "playbook.yml"),
            "--connection=local",
            "--limit",
            limit,
            "-e",
            json.dumps(extra_vars),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=600,
    )


def _recap(stdout: str) -> dict[str, dict[str, int]]:
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", stdout, re.M):
        out[m[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[2])}
    return out


def _validating_tools() -> dict[str, str]:
    return {
        # Each machine's files are checked by the promtool of its Prometheus' major.
        "promtool2": require_major("promtool", 2),
        "promtool3": require_major("promtool", 3),
        "flobs_promtool": "{{ promtool2 if flobs_prometheus_version is version('3', '<') "
        "else promtool3 }}",
        "flobs_otelcol": require_tool("otelcol-contrib", "otelcol"),
    }


def test_inventory_has_the_flobs_names_and_addresses(out: Path) -> None:
    inv = yamlio.load((out / "deploy/ansible/inventory.yml").read_text())
    hosts = inv["all"]["children"]["flobs_hosts"]["hosts"]
    assert {name: h["ansible_host"] for name, h in hosts.items()} == {
        "fl-eu1-a-01": "10.10.0.11",
        "fl-eu1-a-02": "10.10.0.12",
        "fl-eu1-a-03": "10.10.0.13",
        "fl-eu1-b-01": "10.10.1.11",
        "fl-eu1-b-02": "10.10.1.12",
        "fl-eu1-b-03": "10.10.1.13",
    }
    assert hosts["fl-eu1-a-01"]["flobs_prometheus_version"] == "3.13"
    assert inv["all"]["children"]["flobs_central"]["hosts"] == {
        "flobs-central": {
            "ansible_host": "prometheus.eu1.example.internal",
            "flobs_prometheus_version": "3.13",
        }
    }


def test_playbook_passes_syntax_check(out: Path, tmp_path: Path) -> None:
    r = _run(out, tmp_path / "root", "--syntax-check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_mode_reports_changes_and_writes_nothing(out: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    r = _run(out, root, "--check", "--diff", tools=_validating_tools())
    assert r.returncode == 0, r.stdout + r.stderr
    recap = _recap(r.stdout)
    assert recap["fl-eu1-a-01"]["changed"] > 0 and recap["fl-eu1-a-01"]["failed"] == 0
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def _doc_rows() -> list[tuple[re.Pattern[str], str]]:
    """docs/deploy.md's layout table: (regex over OUT paths, destination template)."""
    rows = []
    text = (REPO / "docs" / "deploy.md").read_text()
    table = text.split("| file in OUT | placed at |", 1)[1].split("\n\n", 1)[0]
    for line in table.splitlines()[2:]:
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        source, dest = cells[0], cells[1]
        regex = re.escape(source)
        regex = regex.replace(re.escape("<host>"), "(?P<host>[^/]+)")
        regex = regex.replace(re.escape("<name>"), "(?P<name>[^/]+)")
        rows.append((re.compile(regex + r"\Z"), dest))
    return rows


def _expected_placement(out: Path, machines: set[str]) -> dict[str, bytes]:
    """Where docs/deploy.md says each of OUT's files goes: '<machine><dest>' → bytes."""
    rows = _doc_rows()
    expected: dict[str, bytes] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        for regex, dest in rows:
            m = regex.match(rel)
            if m:
                machine = m.groupdict().get("host") or "flobs-central"
                if machine in machines:
                    name = m.groupdict().get("name")
                    where = dest.replace("<name>", name) if name else dest
                    expected[machine + where] = path.read_bytes()
                break
    return expected


def test_real_run_places_every_file_where_the_doc_says_then_changes_nothing(
    out: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    tools = _validating_tools()
    first = _run(out, root, tools=tools)
    assert first.returncode == 0, first.stdout + first.stderr
    placed = {
        p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }
    expected = _expected_placement(out, set(LIMIT.split(",")))
    assert sorted(placed) == sorted(expected)
    assert placed == expected
    # The table is not vacuous: units, configs, rules and targets all went somewhere.
    assert "fl-eu1-b-03/etc/flobs/alloy/config.alloy" in placed
    assert "fl-eu1-a-01/etc/systemd/system/flobs-promtail.service" in placed
    assert "flobs-central/etc/flobs/central/targets/eu1-a.json" in placed
    drop_in = "etc/systemd/system/prometheus.service.d/flobs.conf"
    assert b"--storage.tsdb.retention.time=15d" in placed[f"fl-eu1-a-02/{drop_in}"]
    assert b"--storage.tsdb.retention" not in placed[f"fl-eu1-a-01/{drop_in}"]
    assert "flobs-central/etc/flobs/central/alertmanager.yml" in placed
    assert "flobs-central/etc/systemd/system/prometheus-alertmanager.service.d/flobs.conf" in placed
    assert (
        placed["fl-eu1-a-01/etc/flobs/placed-host.json"]
        == (out / "hosts/fl-eu1-a-01/placed.json").read_bytes()
    )
    assert len(placed) == 45  # 12 per host, 9 on the centre (with the records)
    second = _run(out, root, tools=tools)
    assert second.returncode == 0, second.stdout + second.stderr
    recap = _recap(second.stdout)
    assert set(recap) == set(LIMIT.split(","))
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap


def _placed(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_files_a_machine_no_longer_gets_are_removed_and_nothing_else(
    out: Path, tmp_path: Path
) -> None:
    """Run; switch a host from Promtail to Alloy and the centre to remote_write mode;
    generate into the same OUT and run again: Promtail's files are gone, vmalert's unit
    is there, files flobs did not place stay, and a third run changes nothing."""
    limit = "fl-eu1-a-01,flobs-central"
    # Validation on the machine is proven above; here it would only cost time.
    tools = {"flobs_promtool": "true", "flobs_otelcol": "true", "flobs_amtool": "true"}
    root = tmp_path / "root"
    work = tmp_path / "out"
    shutil.copytree(out, work)
    first = _run(work, root, tools=tools, limit=limit)
    assert first.returncode == 0, first.stdout + first.stderr
    host = root / "fl-eu1-a-01"
    assert (host / "etc/flobs/promtail/promtail.yml").is_file()
    # Not flobs': beside its files, and listed in a record that was tampered with.
    mine = {
        "fl-eu1-a-01/etc/flobs/promtail/notes.txt": b"mine\n",
        "fl-eu1-a-01/etc/systemd/system/other.service": b"[Service]\n",
        "fl-eu1-a-01/etc/hostname": b"h\n",
        "fl-eu1-a-01/etc/systemd/system/ssh.service": b"[Service]\n",
    }
    for rel, data in mine.items():
        (root / rel).write_bytes(data)
    record_path = host / "etc/flobs/placed-host.json"
    record = json.loads(record_path.read_text())
    record["placed"] += [
        {"path": "/etc/hostname", "notify": []},
        {"path": "/etc/flobs/../hostname", "notify": []},
        {"path": "/etc/systemd/system/ssh.service", "notify": []},
    ]
    record_path.write_text(json.dumps(record))

    inventory = remote_write_example(tmp_path / "inventory.yaml")
    text = inventory.read_text()
    a01 = "    address: 10.10.0.11           # how the central Prometheus reaches this host\n"
    assert text.count(a01) == 1
    inventory.write_text(text.replace(a01, a01 + "    vars: {logs: {agent: alloy}}\n"))
    generate(inventory, work)
    second = _run(work, root, tools=tools, limit=limit)
    assert second.returncode == 0, second.stdout + second.stderr
    removed = re.findall(
        r"^changed: \[(\S+)\] => \(item=(\S+)\)$",
        second.stdout.split("TASK [files flobs placed before and no longer does are removed]")[
            1
        ].split("TASK [")[0],
        re.M,
    )
    assert removed == [
        ("fl-eu1-a-01", "/etc/flobs/promtail/promtail.yml"),
        ("fl-eu1-a-01", "/etc/systemd/system/flobs-promtail.service"),
    ]
    # Handlers run (and skip: no systemctl here) for what changed on each machine: the
    # removed Promtail unit makes systemd re-read its units; on the centre the new
    # vmalert unit and the Alertmanager drop-in (now with peers) restart their services.
    host_play, central_play = second.stdout.split("PLAY [The centre")
    handlers = re.compile(r"^RUNNING HANDLER \[(.+)\]", re.M)
    assert "systemd daemon-reload" in handlers.findall(host_play)
    assert {
        "systemd daemon-reload",
        "restart flobs-vmalert.service",
        "restart prometheus-alertmanager.service",
    } <= set(handlers.findall(central_play))
    expected = _expected_placement(work, set(limit.split(",")))
    assert "flobs-central/etc/systemd/system/flobs-vmalert.service" in expected
    assert "fl-eu1-a-01/etc/flobs/alloy/config.alloy" in expected
    assert _placed(root) == {**expected, **mine}
    third = _run(work, root, tools=tools, limit=limit)
    assert third.returncode == 0, third.stdout + third.stderr
    recap = _recap(third.stdout)
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap


def test_a_file_the_real_tool_rejects_is_not_placed(out: Path, tmp_path: Path) -> None:
    bad = tmp_path / "out"
    shutil.copytree(out, bad)
    rules = bad / "hosts/fl-eu1-a-01/rules/flobs-local.yml"
    rules.write_text(rules.read_text().replace("expr: ", "expr: sum(", 1))
    root = tmp_path / "root"
    r = _run(bad, root, tools=_validating_tools(), limit="fl-eu1-a-01")
    assert r.returncode != 0
    assert "failed to validate" in r.stdout + r.stderr
    assert "unclosed left parenthesis" in r.stdout + r.stderr
    assert not (root / "fl-eu1-a-01/etc/flobs/prometheus/rules/flobs-local.yml").exists()


def test_reload_handlers_skip_services_flobs_did_not_install(out: Path) -> None:
    """vmalert exists only in remote_write mode: its handler checks that flobs wrote its
    unit; a packaged service (prometheus-alertmanager) is there with its package."""
    central = yamlio.load((out / "deploy/ansible/playbook.yml").read_text())[1]
    when = {h["name"]: h["when"] for h in central["handlers"]}
    assert when["reload flobs-vmalert.service"] == [
        "flobs_manage_services | bool",
        "(src_dir ~ '/systemd/flobs-vmalert.service') is file",
    ]
    assert when["reload prometheus-alertmanager.service"] == ["flobs_manage_services | bool"]
    assert when["reload prometheus.service"] == ["flobs_manage_services | bool"]
