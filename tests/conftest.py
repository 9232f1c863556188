"""Shared fixtures.

* Real tools: ``require_tool("promtool")`` returns the binary's path, or skips with
  a loud reason; under ``FLOBS_REQUIRE_TOOLS=1`` (CI) a missing tool fails instead.
* Network: an autouse guard refuses any connection that is not to loopback.
* ``free_port()`` hands out a currently free TCP port on a loopback address.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from flobs import tools

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_INVENTORY = REPO / "examples" / "inventory.yaml"


def tools_required() -> bool:
    return os.environ.get("FLOBS_REQUIRE_TOOLS", "") not in ("", "0", "false")


_HOW_TO_GET = (
    "`bash .ci/run` installs them all; by hand: apt-get install prometheus "
    "prometheus-node-exporter prometheus-process-exporter victoria-metrics "
    "prometheus-alertmanager, and `make tools` builds Prometheus 3, otelcol, jaeger and "
    "victoria-logs into .tools/bin (docs/testing.md)"
)


def _missing(reason: str) -> NoReturn:
    if tools_required():
        pytest.fail(reason + " and FLOBS_REQUIRE_TOOLS=1 is set", pytrace=False)
    pytest.skip(reason)


def require_tool(*names: str) -> str:
    """The first of ``names`` on flobs' tool search path ($FLOBS_TOOLS_PATH, .tools/bin,
    PATH); skip (or fail in CI) when none is."""
    for name in names:
        found = tools.find_all(name)
        if found:
            return found[0]
    _missing(f"MISSING TOOL: none of {', '.join(names)} is installed; {_HOW_TO_GET}")


def require_major(tool: str, major: int) -> str:
    """``tool`` (prometheus, promtool) of major version ``major``; skip or fail without it."""
    found = tools.by_major(tool).get(major)
    if found is None:
        _missing(f"MISSING TOOL: no {tool} {major}.x is installed; {_HOW_TO_GET}")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return True  # unix sockets


@pytest.fixture(autouse=True)
def _no_external_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.0/8 only; anything else is a bug in the test or the code."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> None:
        if not _is_local(address):
            raise ConnectionRefusedError(f"test tried to reach {address!r}: only loopback allowed")
        real_connect(self, address)  # type: ignore[arg-type]

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if not _is_local(address):
            raise ConnectionRefusedError(f"test tried to reach {address!r}: only loopback allowed")
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


@pytest.fixture(scope="session")
def example_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example inventory generated once per session (read-only for tests)."""
    from flobs.generate import generate

    out = tmp_path_factory.mktemp("example") / "out"
    generate(EXAMPLE_INVENTORY, out)
    return out


@pytest.fixture(autouse=True)
def _own_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`flobs validate` keeps results in $XDG_CACHE_HOME/flobs: each test gets its own,
    so no test reads another's results (or the developer's ~/.cache)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Secrets registered by one test (a token, a URL's userinfo) are not hidden in the next."""
    from flobs import httpio, redact

    yield
    redact.reset()
    httpio.clear_command_deadline()
