"""Variants of the example inventory the deploy tests share."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EXAMPLE_INVENTORY

FEDERATION = """  prometheus:
    listen: 0.0.0.0:9090
    url: http://prometheus.eu1.example.internal:9090
"""
REMOTE_WRITE = """  prometheus:
    mode: remote_write
    url: https://vm.eu1.example.internal
    remote_write:
      url: https://vm.eu1.example.internal/api/v1/write
      basic_auth: {username: flobs, password_file: /etc/flobs/secrets/vm 100%}
"""
AM_LISTEN = "    listen: 127.0.0.1:9093\n"
AM_CLUSTER = "    cluster: {listen: 10.0.9.1:9094, peers: ['10.0.9.2:9094', 'am3.eu1:9094']}\n"


def remote_write_example(path: Path) -> Path:
    """The example in remote_write mode (vmalert, whose store password file has a space
    and a % in its name), with an Alertmanager that gossips with two peers."""
    text = EXAMPLE_INVENTORY.read_text()
    assert text.count(FEDERATION) == 1 and text.count(AM_LISTEN) == 1
    path.write_text(
        text.replace(FEDERATION, REMOTE_WRITE).replace(AM_LISTEN, AM_LISTEN + AM_CLUSTER)
    )
    return path
