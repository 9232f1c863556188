"""The one walker per document kind, the one label_values grammar, the one endpoint grammar."""

from __future__ import annotations

from typing import Any

import pytest

from flobs.docwalk import iter_panels, iter_rules, label_values
from flobs.model import Endpoint


def test_rules_of_any_shape_yield_only_rule_mappings_with_their_paths() -> None:
    doc: Any = {
        "groups": [
            {"rules": [{"record": "a", "expr": "1"}, "junk", {"alert": "B", "expr": "up"}]},
            "not a group",
            {"rules": None},
            {"rules": [{"record": "c", "expr": 2}]},
        ]
    }
    assert list(iter_rules(doc)) == [
        (("groups", 0, "rules", 0), {"record": "a", "expr": "1"}),
        (("groups", 0, "rules", 2), {"alert": "B", "expr": "up"}),
        (("groups", 3, "rules", 0), {"record": "c", "expr": 2}),
    ]
    for hostile in (None, [], "groups", {"groups": {"a": 1}}, {"groups": [[{"record": "x"}]]}):
        assert list(iter_rules(hostile)) == []


def test_panels_nested_in_rows_come_depth_first_with_their_paths() -> None:
    dashboard: Any = {
        "panels": [
            {"id": 1},
            {"id": 2, "type": "row", "panels": [{"id": 3}, 7, {"id": 4, "panels": [{"id": 5}]}]},
            None,
            {"id": 6},
        ]
    }
    assert [(path, p["id"]) for path, p in iter_panels(dashboard)] == [
        (("panels", 0), 1),
        (("panels", 1), 2),
        (("panels", 1, "panels", 0), 3),
        (("panels", 1, "panels", 2), 4),
        (("panels", 1, "panels", 2, "panels", 0), 5),
        (("panels", 3), 6),
    ]
    assert list(iter_panels({"panels": "x"})) == [] == list(iter_panels([{"id": 1}]))


@pytest.mark.parametrize(
    ("query", "parsed"),
    [
        ("label_values(up, cluster)", ("up", "cluster")),
        ('label_values(up{cluster="$cluster"}, host)', ('up{cluster="$cluster"}', "host")),
        ('label_values(up{a="x,y"},host)', ('up{a="x,y"}', "host")),
        ("  label_values( host )  ", (None, "host")),
        ("label_values(\n  up,\n  job\n)", ("up", "job")),
        ("label_values(up, 1abc)", None),
        ("query_result(up)", None),
        ("up", None),
    ],
)
def test_label_values_grammar(query: str, parsed: tuple[str | None, str] | None) -> None:
    assert label_values(query) == parsed


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("127.0.0.1:9090", Endpoint("127.0.0.1", 9090)),
        ("localhost:9100", Endpoint("localhost", 9100)),
        (":9090", Endpoint("", 9090)),
        ("[::1]:4317", Endpoint("::1", 4317)),
        ("[fe80::1%eth0]:80", Endpoint("fe80::1%eth0", 80)),
        ("0.0.0.0:0", Endpoint("0.0.0.0", 0)),
        ("::1:9090", None),  # a bare IPv6 address with a port is not an endpoint
        ("localhost", None),
        ("host:port", None),
        ("host:123456", None),
        ("${env:OTLP}:4317", None),
        ("h:9090\n", None),
    ],
)
def test_endpoint_grammar(text: str, endpoint: Endpoint | None) -> None:
    assert Endpoint.parse(text) == endpoint
    if endpoint is not None:
        assert str(endpoint) == text or text.startswith(":")
