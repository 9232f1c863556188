"""No URL in the inventory may carry credentials: every URL key of the schema, walked.

The keys come from walking ``schemas/inventory.schema.json`` independently of the
code under test, so a URL key added to the schema is tested (and must be refused)
without anyone remembering to add it here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from flobs import resources, yamlio
from flobs.errors import InputError
from flobs.inventory import load_fleet
from tests.conftest import EXAMPLE_INVENTORY
from tests.helpers import run_flobs

USER, PASSWORD = "admin", "UrlPass-Distinctive-4c1d"
MESSAGE = "a URL must not contain credentials (user:password@)"


def _schema_url_keys() -> list[tuple[str, ...]]:
    """Every property path whose schema is a string that must start with http(s)://
    or whose key names a URL; `*` for items and free-form keys."""
    schema = resources.schema("inventory.schema.json")
    found: list[tuple[str, ...]] = []

    def deref(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        node = deref(node)
        for key, sub in node.get("properties", {}).items():
            sub = deref(sub)
            is_url = key == "url" or key.endswith("_url") or "https?" in sub.get("pattern", "")
            if sub.get("type") == "string" and is_url:
                found.append((*path, key))
            items = deref(sub.get("items") or {})
            if items.get("type") == "string" and "https?" in items.get("pattern", ""):
                found.append((*path, key, "*"))  # a list of URLs
            walk(sub, (*path, key))
        if isinstance(node.get("items"), dict):
            walk(node["items"], (*path, "*"))
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], (*path, "*"))

    walk(schema, ())
    return found


URL_KEYS = _schema_url_keys()
# Siblings a section needs to be valid when the test creates it for the URL.
REQUIRED = {
    ("central", "traces"): {"otlp_endpoint": "tempo.example.internal:4317"},
    ("central", "loki"): {"url": "https://loki.example.internal/loki/api/v1/push"},
    ("central", "logs"): {"url": "https://loki.example.internal/loki/api/v1/push"},
    ("central", "alertmanager", "receivers", "*", "opsgenie", "*"): {"api_key_file": "/k"},
}


def test_the_walk_finds_the_url_keys_the_code_refuses() -> None:
    from flobs.inventory.urls import url_paths

    assert len(URL_KEYS) >= 10
    assert set(URL_KEYS) == set(url_paths())


def _with(doc: dict[str, Any], path: tuple[str, ...], value: str) -> dict[str, Any]:
    """``doc`` with ``value`` at ``path``; ``*`` is the first item of a list (made if absent)."""
    doc = copy.deepcopy(doc)
    if path[:2] == ("central", "logs"):
        doc["central"].pop("loki", None)  # central.logs replaces it; both is an error
    if path[:3] == ("central", "alertmanager", "urls"):
        doc["central"]["alertmanager"] = {}  # urls and receivers exclude each other
    node: Any = doc
    for depth, key in enumerate(path[:-1]):
        if key == "*":
            if not node:
                node.append(dict(REQUIRED.get(path[: depth + 1], {})))
            node = node[0]
            continue
        if key not in node:
            fresh = dict(REQUIRED.get(path[: depth + 1], {}))
            node[key] = [] if path[depth + 1] == "*" else fresh
        node = node[key]
    if path[-1] == "*":
        node[:] = [value]
    else:
        node[path[-1]] = value
    return doc


@pytest.mark.parametrize("path", URL_KEYS, ids=[".".join(p) for p in URL_KEYS])
def test_credentials_in_every_url_key_are_refused_at_their_position(
    tmp_path: Path, path: tuple[str, ...]
) -> None:
    url = f"https://{USER}:{PASSWORD}@store.example.internal/base"
    doc = _with(yamlio.load(EXAMPLE_INVENTORY.read_text(encoding="utf-8")), path, url)
    inventory = tmp_path / "inventory.yaml"
    text = yamlio.dump(doc)
    inventory.write_text(text, encoding="utf-8")
    line_no, line = next((n, s) for n, s in enumerate(text.splitlines(), 1) if url in s)
    # The value, quote included: after `key: `, or after `- ` for a list item.
    col = line.index("- ") + 3 if path[-1] == "*" else line.index(": ") + 3
    with pytest.raises(InputError) as info:
        load_fleet(inventory, display_name="inventory.yaml")
    (problem,) = info.value.problems
    assert problem.render().splitlines()[0] == (
        f"inventory.yaml:{line_no}:{col}: $.{'.'.join(path).replace('.*', '[0]')}: {MESSAGE}"
    )
    assert problem.hint is not None and "password_file" in problem.hint
    assert "bearer_token_file" in problem.hint


def test_the_cli_exits_2_writes_nothing_and_never_shows_the_password(tmp_path: Path) -> None:
    text = EXAMPLE_INVENTORY.read_text(encoding="utf-8").replace(
        "url: https://loki.example.internal",
        f"url: https://{USER}:{PASSWORD}@loki.example.internal",
    )
    assert PASSWORD in text
    (tmp_path / "inventory.yaml").write_text(text, encoding="utf-8")
    result = run_flobs("generate", "-i", "inventory.yaml", "-o", "out", cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert result.stdout == ""
    line = next(n for n, s in enumerate(text.splitlines(), 1) if PASSWORD in s)
    assert result.stderr.startswith(f"inventory.yaml:{line}:10: $.central.loki.url: {MESSAGE}\n")
    assert "password_file" in result.stderr
    assert PASSWORD not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["push-dashboards", "OUT", "--grafana-url"], "--grafana-url"),
        (["verify", "-i", str(EXAMPLE_INVENTORY), "--prometheus"], "--prometheus"),
    ],
)
def test_url_options_with_credentials_exit_2(tmp_path: Path, argv: list[str], option: str) -> None:
    (tmp_path / "OUT").mkdir()
    url = f"https://{USER}:{PASSWORD}@remote.example.internal"
    result = run_flobs(*argv, url, cwd=tmp_path, env={"GRAFANA_TOKEN": "tok-for-the-test"})
    assert result.code == 2, result.stderr
    assert result.stderr.startswith(f"error: {option} must not contain credentials")
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://prom.example:99999", "Port out of range 0-65535"),
        ("http://prom.example:abc/", "Port could not be cast to integer value as 'abc'"),
        ("http:///api", "it has no host"),
        ("http://prom example:9090", "its host contains whitespace"),
    ],
)
def test_a_url_that_cannot_be_requested_is_refused_at_its_position(
    tmp_path: Path, url: str, why: str
) -> None:
    """Not later, as an internal error when verify or push first uses it."""
    text = EXAMPLE_INVENTORY.read_text(encoding="utf-8").replace(
        "url: http://prometheus.eu1.example.internal:9090", f"url: '{url}'"
    )
    (tmp_path / "inventory.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_fleet(tmp_path / "inventory.yaml", display_name="inventory.yaml")
    (problem,) = info.value.problems
    line = next(n for n, s in enumerate(text.splitlines(), 1) if url in s)
    assert problem.render().splitlines()[0] == (
        f"inventory.yaml:{line}:10: $.central.prometheus.url: not a valid URL: {why}"
    )


@pytest.mark.parametrize(
    ("argv", "url", "message"),
    [
        (
            ["push-dashboards", "OUT", "--grafana-url"],
            "http://[::1",
            "error: --grafana-url 'http://[::1' is not a valid URL (Invalid IPv6 URL)",
        ),
        (
            ["verify", "-i", str(EXAMPLE_INVENTORY), "--prometheus"],
            "http://prom:99999",
            "error: --prometheus 'http://prom:99999' is not a valid URL "
            "(Port out of range 0-65535)",
        ),
        (
            ["verify", "-i", str(EXAMPLE_INVENTORY), "--prometheus"],
            "prom:9090",
            "error: --prometheus 'prom:9090' is not an http(s) URL",
        ),
    ],
)
def test_malformed_url_options_exit_2(
    tmp_path: Path, argv: list[str], url: str, message: str
) -> None:
    (tmp_path / "OUT").mkdir()
    result = run_flobs(*argv, url, cwd=tmp_path, env={"GRAFANA_TOKEN": "tok-for-the-test"})
    assert result.code == 2, result.stderr
    assert result.stderr.splitlines()[0] == message
