"""A root directory in which ``systemd-analyze verify --root`` can load flobs' units.

verify needs the units a unit depends on (targets, slices) and an executable at every
ExecStart/ExecReload path; the packaged units a drop-in extends come from this
machine's /lib/systemd/system (Debian's prometheus* packages).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

SYSTEM_UNITS = Path("/lib/systemd/system")
_EXEC = re.compile(r"^Exec(?:Start|Reload|Stop)=[-@:+!]*(/[^\s\\]+)", re.M)


def make_root(root: Path, units: dict[str, bytes], binaries: Iterable[str]) -> None:
    """``units``: path under /etc/systemd/system (``x.service``, ``x.service.d/flobs.conf``)
    → content; ``binaries``: the paths installed on the machine (as stubs), besides the
    ones the packaged units run."""
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "lib").symlink_to("usr/lib")
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    etc = root / "etc/systemd/system"
    texts = [p.read_text(errors="replace") for p in SYSTEM_UNITS.glob("prometheus*.service")]
    for rel, data in units.items():
        (etc / rel).parent.mkdir(parents=True, exist_ok=True)
        (etc / rel).write_bytes(data)
    packaged = {b for text in texts for b in _EXEC.findall(text)}
    for binary in sorted(packaged | set(binaries)):
        stub = root / binary.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        # verify only checks the path is executable; the stub is never run.
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
