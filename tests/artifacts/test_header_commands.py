"""Command lines in generated headers are safe to paste into a shell.

A header says how to start the program (`alloy run --storage.path=…`). Values in it
come from the inventory; one with `;`, spaces or quotes must stay one argument
when the line is copied into a shell, never become a second command.
"""

from __future__ import annotations

import shlex

from flobs.artifacts import exporters
from tests.artifacts.test_alloy import alloy_text
from tests.artifacts.test_promtail import example_doc, fleet_of

HOSTILE_DIR = "/var/lib/x; touch /tmp/pwned 'q' $(id)"


def _command_line(text: str, starts: str) -> list[str]:
    (line,) = [
        line.removeprefix("//").strip()
        for line in text.splitlines()
        if line.removeprefix("//").strip().startswith(starts)
    ]
    return shlex.split(line)


def test_alloy_hint_keeps_a_hostile_storage_path_one_argument() -> None:
    doc = example_doc()
    doc["hosts"][5]["vars"]["logs"].update({"positions_dir": HOSTILE_DIR})
    words = _command_line(alloy_text(doc=doc), "alloy run")
    assert words == [
        "alloy",
        "run",
        "--server.http.listen-addr=127.0.0.1:9080",
        f"--storage.path={HOSTILE_DIR}",
        "<this",
        "file>",
    ]


def test_exporter_hints_quote_an_ipv6_listen_address() -> None:
    doc = example_doc()
    doc["hosts"][0].setdefault("vars", {})["node_exporter"] = {"endpoint": "[::1]:9100"}
    fleet = fleet_of(doc)
    files = exporters.host_files(fleet.host_scope, fleet.hosts[0])
    text = files["hosts/fl-eu1-a-01/exporters/node_exporter-web.yml"].decode()
    assert "#   '--web.listen-address=[::1]:9100' --web.config.file=<this file>\n" in text
