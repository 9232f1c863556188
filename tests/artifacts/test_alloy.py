"""config.alloy: escaping checked by an independent string reader; same behaviour as Promtail.

The reader below follows the Go string-literal rules Alloy uses (double quotes;
escapes \\a \\b \\f \\n \\r \\t \\v \\\\ \\" \\xHH \\uHHHH \\UHHHHHHHH \\ooo; no raw newline).
It is written here on purpose instead of reusing ``flobs.artifacts.alloy.parse``,
so the escaping is checked by something that does not share its code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flobs.artifacts import alloy, promtail
from flobs.artifacts.alloy import Block, Ref, alloy_string, parse
from tests.artifacts.test_promtail import (
    HOSTILE,
    corpus_lines,
    example_doc,
    example_fleet,
    fleet_of,
    hostile_doc,
    promtail_doc,
    run_pipeline,
)

_GO_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}


def read_go_string(literal: str) -> str:
    """Decode one Go/Alloy double-quoted literal, rejecting what Go rejects."""
    assert literal.startswith('"'), literal
    assert literal.endswith('"'), literal
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        assert ch not in '\n"', f"raw {ch!r} inside a string literal: {literal!r}"
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1]
        if esc in _GO_SIMPLE:
            out.append(_GO_SIMPLE[esc])
            i += 2
        elif esc in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + n]
            assert re.fullmatch(f"[0-9a-fA-F]{{{n}}}", digits), literal
            out.append(chr(int(digits, 16)))
            i += 2 + n
        else:
            assert re.fullmatch("[0-7]{3}", body[i + 1 : i + 4]), f"bad escape in {literal!r}"
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
    return "".join(out)


_ASSIGNMENT = re.compile(r'^\s*("(?:[^"\\\n]|\\.)*"|[a-z_]+)\s*=\s*("(?:[^"\\\n]|\\.)*")', re.M)


def assignments(text: str) -> list[tuple[str, str]]:
    """Every ``key = "literal"`` line, decoded with the independent reader."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    out = []
    for key, value in _ASSIGNMENT.findall(code):
        out.append((read_go_string(key) if key.startswith('"') else key, read_go_string(value)))
    return out


def file_source_doc() -> dict[str, Any]:
    """The example with fl-eu1-b-03's Alloy reading flintlockd's log file."""
    doc = example_doc()
    doc["hosts"][5]["vars"]["logs"].update(
        {"source": "file", "path": "/var/log/flintlockd/flintlockd.log"}
    )
    return doc


def alloy_text(fleet_index: int = 5, doc: dict[str, Any] | None = None) -> str:
    fleet = fleet_of(doc) if doc is not None else example_fleet()
    (data,) = alloy.host_files(fleet.host_scope, fleet.hosts[fleet_index]).values()
    return data.decode()


def blocks_by_name(blocks: list[Block]) -> dict[str, Block]:
    return {b.component_id: b for b in blocks}


# --------------------------------------------------------------------------- escaping


@given(st.text())
def test_alloy_string_reads_back_with_the_go_rules(value: str) -> None:
    literal = alloy_string(value)
    assert "\n" not in literal
    assert "\r" not in literal
    assert read_go_string(literal) == value


def test_hostile_values_round_trip_through_the_generated_file() -> None:
    text = alloy_text(doc=hostile_doc())
    pairs = assignments(text)
    assert ("tenant_id", HOSTILE) in pairs
    assert ("username", HOSTILE.replace(":", "")) in pairs
    assert ("password_file", '/etc/flobs/pw ${x} "q"') in pairs
    assert ("ca_file", "/etc/ssl/ü ca.pem") in pairs
    assert ("url", 'https://loki.example/loki/api/v1/push?x=${y}&q="') in pairs
    assert ("cluster", HOSTILE) in pairs
    assert ("rack", HOSTILE) in pairs
    # The file path sits inside an object literal on the targets line.
    (targets,) = re.findall(r'\{"__path__" = ("(?:[^"\\\n]|\\.)*")\}', text)
    assert read_go_string(targets) == '/var/log/${x} "q" #.log'
    # Comments: the hostile cluster name in the header never escapes its `//`.
    header = text.split("\n\n", 1)[0]
    assert all(line.startswith("//") for line in header.splitlines())
    # And flobs' own reader (used by validate) agrees with the independent one.
    write = blocks_by_name(parse(text))["loki.write.central"]
    assert write.attrs["external_labels"]["cluster"] == HOSTILE
    (endpoint,) = write.children("endpoint")
    assert endpoint.attrs["tenant_id"] == HOSTILE


# --------------------------------------------------------------------------- behaviour


def test_same_field_mapping_as_promtail_over_the_corpus() -> None:
    """Alloy's stages, translated to Promtail's, give the same entries for every line."""
    doc = example_doc()
    for h in doc["hosts"]:
        h.pop("vars", None)
    doc["defaults"]["logs"].update({"agent": "alloy", "source": "file"})
    fleet = fleet_of(doc)
    (data,) = alloy.host_files(fleet.host_scope, fleet.hosts[0]).values()
    process = blocks_by_name(parse(data.decode()))["loki.process.flintlockd"]
    stages: list[dict[str, Any]] = []
    for stage in process.blocks:
        a = stage.attrs
        if stage.name == "stage.json":
            stages.append(
                {"json": {"expressions": a["expressions"], "drop_malformed": a["drop_malformed"]}}
            )
        elif stage.name == "stage.timestamp":
            stages.append(
                {
                    "timestamp": {
                        "source": a["source"],
                        "format": a["format"],
                        "action_on_failure": a["action_on_failure"],
                    }
                }
            )
        elif stage.name == "stage.labels":
            stages.append({"labels": a["values"]})
        elif stage.name == "stage.structured_metadata":
            stages.append({"structured_metadata": a["values"]})
        elif stage.name == "stage.label_drop":
            stages.append({"labeldrop": a["values"]})
        else:
            raise AssertionError(f"unexpected {stage.name}")
    assert stages[-1] == {"labeldrop": ["filename", "job"]}

    doc["defaults"]["logs"]["agent"] = "promtail"
    promtail_stages = promtail_doc(fleet_of(doc))["scrape_configs"][0]["pipeline_stages"]
    read_time = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    for line in corpus_lines():
        want = run_pipeline(promtail_stages, line, read_time)
        got = run_pipeline(stages, line, read_time)
        assert got == want, line


def test_file_source_config() -> None:
    blocks = blocks_by_name(parse(alloy_text(doc=file_source_doc())))
    assert set(blocks) == {
        "loki.source.file.flintlockd",
        "loki.process.flintlockd",
        "loki.write.central",
    }
    source = blocks["loki.source.file.flintlockd"]
    assert source.attrs["targets"] == [{"__path__": "/var/log/flintlockd/flintlockd.log"}]
    assert source.attrs["forward_to"] == [Ref(("loki", "process", "flintlockd", "receiver"))]
    assert blocks["loki.process.flintlockd"].attrs["forward_to"] == [
        Ref(("loki", "write", "central", "receiver"))
    ]


def test_journal_source_config() -> None:
    doc = example_doc()
    doc["hosts"][5]["vars"]["logs"] = {"agent": "alloy", "unit": "flintlockd@eu1.service"}
    blocks = blocks_by_name(parse(alloy_text(doc=doc)))
    journal = blocks["loki.source.journal.flintlockd"]
    assert journal.attrs["matches"] == "_SYSTEMD_UNIT=flintlockd@eu1.service"
    assert journal.attrs["relabel_rules"] == Ref(("loki", "relabel", "journal", "rules"))
    (rule,) = blocks["loki.relabel.journal"].children("rule")
    assert rule.attrs == {"source_labels": ["__journal__systemd_unit"], "target_label": "unit"}
    assert "loki.source.file.flintlockd" not in blocks


def test_header_says_how_to_run_alloy_with_listen_address_and_storage() -> None:
    doc = example_doc()
    doc["hosts"][5]["vars"]["logs"].update(
        {"listen": "127.0.0.1:9581", "positions_dir": "/data/alloy"}
    )
    text = alloy_text(doc=doc)
    assert "alloy run --server.http.listen-addr=127.0.0.1:9581 --storage.path=/data/alloy" in text


def test_loki_client_auth_and_tls() -> None:
    doc = example_doc()
    doc["central"]["loki"] = {
        "url": "https://l.example/loki/api/v1/push",
        "basic_auth": {"username": "u", "password_file": "/p"},
        "ca_file": "/ca.pem",
        "insecure_skip_verify": True,
    }
    write = blocks_by_name(parse(alloy_text(doc=doc)))["loki.write.central"]
    (endpoint,) = write.children("endpoint")
    assert "tenant_id" not in endpoint.attrs
    assert "bearer_token_file" not in endpoint.attrs
    (basic,) = endpoint.children("basic_auth")
    assert basic.attrs == {"username": "u", "password_file": "/p"}
    (tls,) = endpoint.children("tls_config")
    assert tls.attrs == {"ca_file": "/ca.pem", "insecure_skip_verify": True}


def test_promtail_hosts_get_no_alloy_file() -> None:
    fleet = example_fleet()
    assert alloy.host_files(fleet.host_scope, fleet.hosts[0]) == {}
    assert promtail.host_files(fleet.host_scope, fleet.hosts[5]) == {}
