"""Supervision of the real binaries the demo and the e2e tests start.

Every child runs in its own session (process group), so stopping it also stops
anything it forked; ``stop_all`` runs on normal exit, on errors and on Ctrl-C.
Output goes to one log file per process, shown when a process dies early.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from flobs import httpio, tools
from flobs.errors import SystemFailure, ToolFailure

# Debian package that ships each binary, for the install hint.
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "prometheus-process-exporter": "prometheus-process-exporter",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "victoria-metrics",
    "alertmanager": "prometheus-alertmanager",
}


class MissingTools(SystemFailure):
    def __init__(self, names: Sequence[str]) -> None:
        packages = sorted({PACKAGES.get(n, n) for n in names})
        super().__init__(
            f"needed binaries are not installed: {', '.join(names)}",
            hint=f"sudo apt-get install {' '.join(packages)}; `make tools` in a flobs "
            "checkout builds Prometheus 3 into .tools/bin (docs/testing.md)",
        )
        self.names = tuple(names)


def require(*names: str) -> dict[str, str]:
    """name → path on flobs' tool search path; raise MissingTools listing every absent one."""
    found = {n: next(iter(tools.find_all(n)), None) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise MissingTools(missing)
    return {n: p for n, p in found.items() if p is not None}


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes]
    # What the demo reports about it (demo.json): its role, its host (None: central)
    # and the base URL it serves.
    role: str = ""
    host: str | None = None
    url: str | None = None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts processes, waits for them to be ready, and stops all of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: dict[str, Child] = {}

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path | None = None,
        role: str = "",
        host: str | None = None,
        url: str | None = None,
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as err:
                raise ToolFailure(argv, None, str(err)) from err
        child = Child(name, argv, log, proc, role or name, host, url)
        self.children[name] = child
        return child

    def wait_ready(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 30.0,
        expect: str | None = None,
        verify: ssl.SSLContext | bool = True,
        auth: tuple[str, str] | None = None,
    ) -> None:
        """Poll ``url`` until it answers 200 (and contains ``expect``); ``verify`` is the
        TLS context for an https URL, ``auth`` basic-auth credentials."""
        child = self.children[name]
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            code = child.proc.poll()
            if code is not None:
                raise ToolFailure(child.argv, code, child.tail())
            try:
                resp = _probe(url, verify, auth)
                if resp.status == 200 and (expect is None or expect in resp.text):
                    return
                last = f"HTTP {resp.status}"
            except httpx.HTTPError as err:
                last = str(err) or type(err).__name__
            time.sleep(0.2)
        raise SystemFailure(
            f"{name} did not become ready at {url} within {timeout:.0f}s "
            f"({last}); its log:\n{child.tail()}"
        )

    def stop(self, name: str, *, timeout: float = 5.0) -> None:
        child = self.children.pop(name, None)
        if child is None:
            return
        _stop_group(child.proc, timeout)

    def stop_all(self, *, last: Sequence[str] = ()) -> None:
        """Stop every child; the ones named in ``last`` after all the others.

        Senders go before receivers: a local Prometheus stopped after the store it
        remote_writes to retries its final flush until it is killed.
        """
        first = [c for n, c in self.children.items() if n not in last]
        final = [c for n, c in self.children.items() if n in last]
        self.children.clear()
        for batch in (first, final):
            # TERM to everyone in the batch first, so shutdowns overlap, then reap.
            for child in batch:
                _signal_group(child.proc, signal.SIGTERM)
            for child in batch:
                _stop_group(child.proc, 5.0)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        os.killpg(proc.pid, sig)  # the child is its session's leader: pgid == pid


def _stop_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _probe(url: str, verify: ssl.SSLContext | bool, auth: tuple[str, str] | None) -> httpio.Answer:
    """One readiness GET, over TLS verified with ``verify`` and with basic auth if given."""
    if verify is True and auth is None:
        return httpio.get(url, timeout=2.0)
    headers = httpio.basic(*auth) if auth else None
    with httpx.Client(transport=httpio.BoundedTransport(verify=verify), trust_env=False) as client:
        return httpio.fetch(client, "GET", url, timeout=2.0, max_bytes=1 << 20, headers=headers)
