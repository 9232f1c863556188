"""The Ansible handoff: ``deploy/ansible/`` places OUT's files on the machines.

flobs does not deploy; fleets of this size are deployed with Ansible already. The
inventory has the flobs host names and addresses; the playbook copies each file to
its place in the layout (``flobs.layout``, documented in docs/deploy.md), validates it
there with the real tool before it replaces the old one, installs the units, and
reloads or restarts only the services whose files changed (handlers).

Files are found on the controller with ``is file`` and ``fileglob``, so one playbook
serves every host whatever it runs. Secrets are never copied: configs name files
(password_file, credentials_file, key_file) that the operator puts on the machine.

Variables (inventory ``all.vars``; override with ``-e``):
  flobs_root               prefix for every destination ("" on real machines)
  flobs_manage_services    false: install files only, never call systemctl
  flobs_become             false: do not sudo (a run as root, or into a test root)
  flobs_promtool / flobs_otelcol / flobs_amtool   the validating tools on the machine
  flobs_prometheus_version (per machine)   the Prometheus version its files are for
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any
from urllib.parse import urlsplit

from flobs import layout, yamlio
from flobs.artifacts.common import header
from flobs.model import Fleet

CENTRAL_HOST = "flobs-central"  # the centre's name in the Ansible inventory
HOSTS_GROUP = "flobs_hosts"
CENTRAL_GROUP = "flobs_central"
ANSIBLE_DIR = "deploy/ansible"
# OUT seen from the playbook: deploy/ansible/ is two levels down.
OUT_FROM_PLAYBOOK = "{{ playbook_dir }}/../.."

DEFAULT_VARS = {
    "flobs_root": "",
    "flobs_manage_services": True,
    "flobs_become": True,
    "flobs_promtool": "promtool",
    "flobs_otelcol": layout.BIN[layout.OTELCOL_UNIT],
    "flobs_amtool": "amtool",
}


def central_address(fleet: Fleet) -> str:
    p = fleet.central.prometheus
    if not p.listen.is_wildcard:
        return p.listen.host
    return urlsplit(p.url).hostname or "localhost"


def inventory(fleet: Fleet) -> dict[str, Any]:
    return {
        "all": {
            "vars": dict(DEFAULT_VARS),
            "children": {
                HOSTS_GROUP: {
                    "hosts": {
                        h.name: {
                            "ansible_host": h.address,
                            # which promtool (major) can check this machine's files
                            "flobs_prometheus_version": h.vars.local_prometheus.version,
                        }
                        for h in fleet.hosts
                    },
                },
                CENTRAL_GROUP: {
                    "hosts": {
                        CENTRAL_HOST: {
                            "ansible_host": central_address(fleet),
                            "flobs_prometheus_version": fleet.central.prometheus.version,
                        }
                    }
                },
            },
        }
    }


def _handler_name(unit: str, action: str) -> str:
    return f"{action} {unit}"


def _copy_tasks(side: layout.Side, src_dir: str) -> tuple[list[dict[str, Any]], set[str]]:
    """One copy task per placement, and the handler names they notify."""
    tasks: list[dict[str, Any]] = []
    notified: set[str] = set()
    for p in layout.PLACEMENTS:
        if p.side != side:
            continue
        notify = _notify(p)
        notified.update(notify)
        copy: dict[str, Any] = {"dest": "", "src": "", "mode": "0644"}
        if p.validate:
            copy["validate"] = p.validate
        task: dict[str, Any] = {"name": f"{p.dest} ({p.unit or 'file_sd'})"}
        if "*" in p.source:
            dest_dir = posixpath.dirname(p.dest)
            copy["src"] = "{{ item }}"
            copy["dest"] = "{{ flobs_root }}" + dest_dir + "/{{ item | basename }}"
            task["ansible.builtin.copy"] = copy
            task["with_fileglob"] = [f"{src_dir}/{p.source}"]
        else:
            copy["src"] = f"{src_dir}/{p.source}"
            copy["dest"] = "{{ flobs_root }}" + p.dest
            task["ansible.builtin.copy"] = copy
            task["when"] = _present(p.source)
        if notify:
            task["notify"] = notify
        tasks.append(task)
    return tasks, notified


def _notify(p: layout.Placement) -> list[str]:
    """The handlers a new or changed file of this placement notifies."""
    notify: list[str] = []
    if p.source.startswith("systemd/"):
        notify.append("systemd daemon-reload")
    if p.unit is not None and p.on_change != "none":
        notify.append(_handler_name(p.unit, p.on_change))
    return notify + [_handler_name(u, "reload") for u in p.also_reload]


def _own_unit(p: layout.Placement) -> bool:
    """A unit file of flobs' own (not a drop-in for a packaged one)."""
    return (
        p.unit is not None
        and p.dest == layout.unit_path(p.unit)
        and not p.dest.endswith("/" + layout.DROP_IN)
    )


def _present(source: str) -> str:
    """A condition, evaluated on the controller: OUT has this file (or glob) for the machine."""
    if "*" in source:
        return f"query('ansible.builtin.fileglob', src_dir ~ '/{source}') | length > 0"
    return f"(src_dir ~ '/{source}') is file"


def _directory_tasks(side: layout.Side) -> list[dict[str, Any]]:
    """One task per destination directory, run only when a file that needs it exists
    (no alloy/ on a Promtail host)."""
    out: dict[str, list[str]] = {}
    for p in layout.PLACEMENTS:
        if p.side == side:
            out.setdefault(posixpath.dirname(p.dest), []).append(_present(p.source))
    record = posixpath.dirname(layout.PLACED_RECORD[side])
    out.setdefault(record, []).append(_present(layout.PLACED_SOURCE))
    return [
        {
            "name": f"directory {path}",
            "ansible.builtin.file": {
                "path": "{{ flobs_root }}" + path,
                "state": "directory",
                "mode": "0755",
            },
            "when": " or ".join(f"({c})" for c in conditions),
        }
        for path, conditions in sorted(out.items())
    ]


def _handlers(notified: set[str], side: layout.Side) -> list[dict[str, Any]]:
    handlers: list[dict[str, Any]] = []
    if "systemd daemon-reload" in notified:
        handlers.append(
            {
                "name": "systemd daemon-reload",
                "ansible.builtin.systemd": {"daemon_reload": True},
                "when": "flobs_manage_services | bool",
            }
        )
    # Restarts before reloads: a restarted service has read its new config already.
    for action, state in (("restart", "restarted"), ("reload", "reloaded")):
        units = sorted(
            {p.unit for p in layout.PLACEMENTS if p.side == side and p.unit is not None}
            | {u for p in layout.PLACEMENTS if p.side == side for u in p.also_reload}
        )
        for unit in units:
            name = _handler_name(unit, action)
            if name in notified:
                handlers.append(
                    {
                        "name": name,
                        "ansible.builtin.systemd": {"name": unit, "state": state},
                        "when": _handler_when(unit),
                    }
                )
    return handlers


def _handler_when(unit: str) -> list[str]:
    """A packaged service is there with its package; a unit of flobs' own (vmalert, only
    in remote_write mode) only where flobs wrote it."""
    when = ["flobs_manage_services | bool"]
    if unit not in layout.DEBIAN_UNITS | layout.DEBIAN_CENTRAL_UNITS:
        when.append(f"(src_dir ~ '/systemd/{unit}') is file")
    return when


def _record_tasks(side: layout.Side) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read the record before the copies; after them, stop and remove what it lists and
    the new one does not (only paths flobs owns), then write the new record."""
    record = "{{ flobs_root }}" + layout.PLACED_RECORD[side]
    before_copies = [
        {
            "name": "the record of what flobs placed here before",
            "ansible.builtin.stat": {"path": record, "get_checksum": False},
            "register": "flobs_record",
        },
        {
            "name": "the record's entries",
            "ansible.builtin.slurp": {"src": record},
            "register": "flobs_record_data",
            "when": "flobs_record.stat.exists",
        },
    ]
    old = (
        "((flobs_record_data.content | b64decode | from_json).placed "
        "if flobs_record.stat.exists else [])"
    )
    new = (
        f"(lookup('ansible.builtin.file', src_dir ~ '/{layout.PLACED_SOURCE}') | from_json)"
        ".placed | map(attribute='path') | list"
    )
    after_copies = [
        {
            "name": "files flobs placed before that this machine no longer gets",
            "ansible.builtin.set_fact": {
                "flobs_stale": "{{ "
                + old
                + f" | rejectattr('path', 'in', {new})"
                + " | selectattr('path', 'match', flobs_owned_path)"
                + " | rejectattr('path', 'search', flobs_not_owned_path) | list }}"
            },
        },
        {
            "name": "services whose unit flobs no longer installs are stopped and disabled",
            "ansible.builtin.systemd": {"name": "{{ item }}", "state": "stopped", "enabled": False},
            # The unit's name comes from its path, never from what a record says.
            "loop": "{{ flobs_stale | map(attribute='path') | select('match', flobs_own_unit_path)"
            " | map('basename') | list }}",
            "when": "flobs_manage_services | bool",
        },
        {
            "name": "files flobs placed before and no longer does are removed",
            "ansible.builtin.file": {"path": "{{ flobs_root }}{{ item.path }}", "state": "absent"},
            "loop": "{{ flobs_stale }}",
            "loop_control": {"label": "{{ item.path }}"},
            "notify": "{{ item.notify }}",
        },
    ]
    write = {
        "name": f"{layout.PLACED_RECORD[side]} (the record for the next run)",
        "ansible.builtin.copy": {
            "src": "{{ src_dir }}/" + layout.PLACED_SOURCE,
            "dest": record,
            "mode": "0644",
        },
    }
    return before_copies, [*after_copies, write]


def _play(name: str, group: str, side: layout.Side, src_dir: str) -> dict[str, Any]:
    copies, notified = _copy_tasks(side, src_dir)
    before_copies, after_copies = _record_tasks(side)
    units = sorted({p.unit for p in layout.PLACEMENTS if p.side == side and p.unit is not None})
    start = {
        "name": "services with a unit or drop-in from flobs are enabled and running",
        "ansible.builtin.systemd": {"name": "{{ item }}", "enabled": True, "state": "started"},
        "loop": units,
        "when": [
            "flobs_manage_services | bool",
            "(src_dir ~ '/systemd/' ~ item) is file or "
            "(src_dir ~ '/systemd/' ~ item ~ '.d/" + layout.DROP_IN + "') is file",
        ],
    }
    return {
        "name": name,
        "hosts": group,
        "become": "{{ flobs_become | bool }}",
        "gather_facts": False,
        "vars": {
            "src_dir": src_dir,
            "flobs_owned_path": layout.OWNED_PATH,
            "flobs_own_unit_path": layout.OWN_UNIT_PATH,
            "flobs_not_owned_path": layout.NOT_OWNED_PATH,
        },
        "tasks": [*_directory_tasks(side), *before_copies, *copies, *after_copies, start],
        "handlers": _handlers(notified, side),
    }


def playbook() -> list[dict[str, Any]]:
    return [
        _play(
            "Flintlock hosts: configs, units and drop-ins from flobs",
            HOSTS_GROUP,
            "host",
            f"{OUT_FROM_PLAYBOOK}/hosts/{{{{ inventory_hostname }}}}",
        ),
        _play(
            "The centre: central Prometheus (and Alertmanager) from flobs",
            CENTRAL_GROUP,
            "central",
            f"{OUT_FROM_PLAYBOOK}/central",
        ),
    ]


def fleet_files(fleet: Fleet) -> dict[str, bytes]:
    def doc(what: str, data: Any) -> bytes:
        return yamlio.dump(data, header=header(fleet, what)).encode("utf-8")

    return {
        f"{ANSIBLE_DIR}/inventory.yml": doc(
            "Ansible inventory: the flobs hosts (same names and addresses) and the centre.",
            inventory(fleet),
        ),
        f"{ANSIBLE_DIR}/playbook.yml": doc(
            "Places OUT's files on each machine as docs/deploy.md says, validating each\n"
            "with the real tool first, and reloads only what changed. Run from anywhere:\n"
            "  ansible-playbook -i deploy/ansible/inventory.yml deploy/ansible/playbook.yml",
            playbook(),
        ),
    }


def _source_regex(source: str) -> re.Pattern[str]:
    """A placement's source as a regex: ``*`` matches within one path segment."""
    return re.compile("".join("[^/]*" if c == "*" else re.escape(c) for c in source) + r"\Z")


def record(side: layout.Side, sources: list[str]) -> dict[str, Any]:
    """What the playbook places from a machine's directory in OUT (its files ``sources``,
    relative to it): each destination and the handlers its removal notifies."""
    placed: dict[str, dict[str, Any]] = {}
    for rel in sources:
        for p in layout.PLACEMENTS:
            if p.side != side or not _source_regex(p.source).match(rel):
                continue
            dest = p.dest
            if "*" in p.source:
                dest = posixpath.join(posixpath.dirname(p.dest), posixpath.basename(rel))
            # A unit of flobs' own is stopped before its file goes (the playbook knows
            # it by its path): nothing is left to restart.
            notify = ["systemd daemon-reload"] if _own_unit(p) else _notify(p)
            placed[dest] = {"path": dest, "notify": notify}
            break
    return {"placed": [placed[k] for k in sorted(placed)]}


def placed_records(tree: dict[str, bytes]) -> dict[str, bytes]:
    """``placed.json`` for the centre and for each host directory in ``tree``."""
    machines: dict[str, tuple[layout.Side, list[str]]] = {}
    for path in sorted(tree):
        parts = path.split("/")
        side: layout.Side
        if parts[0] == "hosts" and len(parts) > 2:
            machine, side, rel = "/".join(parts[:2]), "host", "/".join(parts[2:])
        elif parts[0] == "central" and len(parts) > 1:
            machine, side, rel = "central", "central", "/".join(parts[1:])
        else:
            continue
        machines.setdefault(machine, (side, []))[1].append(rel)
    return {
        f"{machine}/{layout.PLACED_SOURCE}": (
            json.dumps(record(side, sources), indent=2, sort_keys=True) + "\n"
        ).encode("utf-8")
        for machine, (side, sources) in machines.items()
    }
