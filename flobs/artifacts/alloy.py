"""Grafana Alloy per host (``logs.agent: alloy``): the same log path as Promtail.

Promtail reached end-of-life on 2026-03-02 and Alloy replaces it. The behaviour is
the same as ``promtail.yml`` (field mapping, labels, structured metadata, Loki
client); only the syntax differs. Alloy takes its HTTP listen address and its data
directory (where it keeps read positions) as command-line flags, not in the file,
so the header comment says how to start it.

Alloy strings are double-quoted with Go-style escapes; :func:`alloy_string` is the
only way a value reaches the file, and ``{{``/``${…}`` mean nothing to Alloy.
"""

from __future__ import annotations

from typing import Any

import jinja2

from flobs import resources
from flobs.artifacts import promtail
from flobs.artifacts.common import header
from flobs.model import Fleet, Host

TEMPLATE = "config.alloy.j2"

_SIMPLE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def alloy_string(value: object) -> str:
    """``value`` as an Alloy string literal that reads back unchanged."""
    if not isinstance(value, str):
        raise TypeError(f"alloy_string takes str, got {type(value).__name__}")
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or code in (0x2028, 0x2029):
            # Control and line-separator characters never appear raw in the file.
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def alloy_bool(value: object) -> str:
    if not isinstance(value, bool):
        raise TypeError(f"alloy_bool takes bool, got {type(value).__name__}")
    return "true" if value else "false"


def _environment() -> jinja2.Environment:
    # Not HTML: autoescape off; every interpolation goes through a filter instead.
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - Alloy syntax, not HTML; escaped by alloy_string
    )
    env.filters["alloy_string"] = alloy_string
    env.filters["alloy_bool"] = alloy_bool
    return env


_ENV = _environment()


def context(fleet: Fleet, host: Host) -> dict[str, Any]:
    logs = host.vars.logs
    loki = fleet.central.loki
    auth = loki.auth
    comment = header(
        fleet,
        f"Grafana Alloy for Flintlock host {host.name}. Alloy reads its listen address and\n"
        "data directory from flags, not from this file; run it as\n"
        f"  alloy run --server.http.listen-addr={logs.listen} "
        f"--storage.path={logs.positions_dir} <this file>\n"
        "The data directory keeps the read positions: keep it on persistent storage.",
    )
    return {
        "header_lines": comment.splitlines(),
        "source": logs.source,
        "unit_match": f"_SYSTEMD_UNIT={logs.unit}",
        "journal_max_age": promtail.JOURNAL_MAX_AGE,
        "journal_unit_label": promtail.JOURNAL_UNIT_LABEL,
        "path": logs.path,
        "json_fields": promtail.JSON_FIELDS,
        "label_fields": promtail.LABEL_FIELDS,
        "metadata_fields": promtail.METADATA_FIELDS,
        "time_field": promtail.TIME_FIELD,
        "time_format": promtail.TIME_FORMAT,
        "dropped_labels": promtail.DROPPED_LABELS,
        "loki_url": loki.url,
        "tenant": loki.tenant,
        "bearer_token_file": auth.bearer_token_file,
        "username": auth.username,
        "password_file": auth.password_file,
        "tls": {
            k: getattr(auth, k) for k in ("ca_file", "cert_file", "key_file") if getattr(auth, k)
        },
        "insecure_skip_verify": auth.insecure_skip_verify,
        "external_labels": promtail.stream_labels(fleet, host),
    }


def render(fleet: Fleet, host: Host) -> str:
    return _ENV.from_string(resources.template_text(TEMPLATE)).render(context(fleet, host))


def host_files(fleet: Fleet, host: Host) -> dict[str, bytes]:
    if host.vars.logs.agent != "alloy":
        return {}
    return {f"hosts/{host.name}/config.alloy": render(fleet, host).encode("utf-8")}
