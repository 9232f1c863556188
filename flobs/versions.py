"""What each supported program version changes in the files flobs writes.

One place answers "does Prometheus X take key Y"; the artifacts ask, the inventory
builder refuses versions outside the supported range, and validate picks the promtool
of the right major version from the same header line (``FOR_PROMETHEUS``).
"""

from __future__ import annotations

import re

# Oldest Prometheus flobs writes for: Debian bookworm's package, also the oldest the
# test suite runs for real. Newer majors are unknown territory: refused.
PROMETHEUS_MIN = "2.42"
PROMETHEUS_MAJORS = (2, 3)

# A generated Prometheus file names its target version on a header line of its own,
# so `flobs validate` (with or without the inventory) checks it with the promtool of
# that major version.
FOR_PROMETHEUS = "For Prometheus {version}."
FOR_PROMETHEUS_RE = re.compile(rb"^# For Prometheus (?P<version>\d+\.\d+(?:\.\d+)?)\.$", re.M)


def parts(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def at_least(version: str, minimum: str) -> bool:
    """``"2.45.1" >= "2.43"``, comparing numerically."""
    have, want = parts(version), parts(minimum)
    width = max(len(have), len(want))
    return have + (0,) * (width - len(have)) >= want + (0,) * (width - len(want))


def prometheus_supported(version: str) -> bool:
    return at_least(version, PROMETHEUS_MIN) and parts(version)[0] in PROMETHEUS_MAJORS


def prometheus_major(version: str) -> int:
    return parts(version)[0]


def expands_external_labels(version: str) -> bool:
    """Prometheus 3 runs ``os.Expand`` over external label values (``$$`` is a ``$``).

    config/config.go in v3: ``r$01`` becomes ``r1``. Prometheus 2 writes them as is.
    """
    return prometheus_major(version) >= 3


def has_fallback_scrape_protocol(version: str) -> bool:
    """``fallback_scrape_protocol`` arrived with 3.0 (2.x rejects the key)."""
    return prometheus_major(version) >= 3


def retention_in_config(version: str) -> bool:
    """``storage.tsdb.retention`` in the config file: 3.8 and later.

    Older versions only take the ``--storage.tsdb.retention.time`` flag, which the run
    artifacts carry instead; 3.8+ deprecates the flag in favour of the file.
    """
    return at_least(version, "3.8")


def escape_external_label(version: str, value: str) -> str:
    """The value to write so that this Prometheus reads back exactly ``value``."""
    return value.replace("$", "$$") if expands_external_labels(version) else value


def header_line(version: str) -> str:
    return FOR_PROMETHEUS.format(version=version)


def file_prometheus_version(head: bytes) -> str | None:
    """The version a generated file declares in its header comment, if any."""
    m = FOR_PROMETHEUS_RE.search(head)
    return m.group("version").decode("ascii") if m else None
