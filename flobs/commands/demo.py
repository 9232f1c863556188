"""`flobs demo`: a simulated fleet with real Prometheus processes, verified end to end."""

from __future__ import annotations

import signal
import tempfile
import threading
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from flobs.cli import app, err_console, handle_errors, out_console
from flobs.commands.verify import render_text
from flobs.errors import ExitCode
from flobs.live.demo import MAX_HOSTS, LiveFleet, Mode, run_demo
from flobs.live.verify import VerifyReport


def panels_by_dashboard(
    report: VerifyReport,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(dashboard → panels with data or partial data, dashboard → panels without)."""
    with_data: dict[str, list[str]] = {}
    without: dict[str, list[str]] = {}
    for p in report.panels:
        if p.outcome in ("data", "partial"):
            with_data.setdefault(p.dashboard, []).append(p.title)
        elif p.outcome == "no data":
            without.setdefault(p.dashboard, []).append(p.title)
    return with_data, without


def _alerting_summary(live: LiveFleet, demo_json: Path) -> str:
    """Where the alerts go and where to read what arrived (nothing without Alertmanager)."""
    am = live.stores()["alertmanager"]
    if live.webhook is None or am is None:
        return ""
    return (
        f"demo: alerts: the Alertmanager delivers to the webhook {live.webhook.url}; "
        f"notifications are listed in {demo_json} (alerting.notifications) as they "
        f"arrive, payloads in {live.webhook.log}\n"
    )


class DemoMode(StrEnum):
    federation = "federation"
    remote_write = "remote_write"


@app.command(
    "demo",
    epilog="Example: flobs demo --hosts 3 --mode remote_write --keep-running",
)
@handle_errors
def demo_command(
    hosts: Annotated[
        int,
        typer.Option("--hosts", min=1, max=MAX_HOSTS, help="How many simulated Flintlock hosts."),
    ] = 3,
    mode: Annotated[
        DemoMode,
        typer.Option(
            "--mode",
            help="federation (central Prometheus) or remote_write (into VictoriaMetrics).",
        ),
    ] = DemoMode.federation,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Leave everything running until Ctrl-C.")
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            metavar="DIR",
            file_okay=False,
            help="Where the inventory, OUT, TSDBs and logs go "
            "(default: a temporary directory, removed afterwards).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Simulator seed.")] = 1,
) -> None:
    """Start N simulated hosts, their exporters and Prometheus, the centre; verify.

    Needs the Debian binaries: apt-get install prometheus prometheus-node-exporter
    (+ victoria-metrics for --mode remote_write; prometheus-process-exporter is used
    when installed). With prometheus-alertmanager installed the centre's alerts go to a
    real Alertmanager, delivered to a webhook inside the demo and listed in demo.json.
    Everything listens on 127.0.0.0/8 and is stopped on exit and Ctrl-C.

    Exit codes: 0 every host verified · 1 a host or query failed verification, or a
    host's recording rule fails ·
    2 bad usage · 3 a binary is missing or a process failed · 130 interrupted.
    """
    chosen: Mode = "remote_write" if mode is DemoMode.remote_write else "federation"
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        # SIGTERM stops the demo like Ctrl-C does: through the finally blocks below.
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    temp = None
    if workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="flobs-demo-")
        workdir = Path(temp.name)
    try:

        def progress(message: str) -> None:
            err_console.print(f"demo: {message}", markup=False)

        with run_demo(hosts, workdir, mode=chosen, seed=seed, progress=progress) as (result, _live):
            report = result.report
            for line in render_text(report, list_panels=False):
                out_console.file.write(line)
            for failure in result.local_rule_failures:
                out_console.file.write(
                    f"error: {failure.host}: local rule {failure.rule} fails: {failure.error}\n"
                )
            with_data, without = panels_by_dashboard(report)
            out_console.file.write("panels with data:\n")
            for dashboard, titles in with_data.items():
                out_console.file.write(f"  {dashboard}: {', '.join(titles)}\n")
            for sig in result.signals:
                out_console.file.write(
                    f"signals: {sig.host}: {sig.log_lines} log lines in VictoriaLogs, "
                    f"{sig.traces} traces in Jaeger\n"
                )
            out_console.file.write(
                "panels without data (log and trace panels are not queried by verify"
                + ("" if result.signals else "; the demo runs no log/trace stores here")
                + "; failure panels show only failures; no flintlockd process exists here):\n"
            )
            for dashboard, titles in without.items():
                out_console.file.write(f"  {dashboard}: {', '.join(titles)}\n")
            counts = report.panel_counts()
            out_console.file.write(
                f"\ndemo: {len(report.hosts) - len(report.failed_hosts)}/{len(report.hosts)} "
                f"hosts present after {result.waited_seconds:.0f}s; "
                f"{counts.data} panels with data, {counts.partial} partial, "
                f"{counts.no_data} without\n"
                f"demo: central ({chosen}): {result.central_url}\n"
                + "".join(
                    f"demo: {what}: {url}\n"
                    for what, url in _live.stores().items()
                    if url and what != "prometheus"
                )
                + f"demo: every process: {result.inventory.parent / 'demo.json'}\n"
                + _alerting_summary(_live, result.inventory.parent / "demo.json")
                + f"demo: inventory {result.inventory}, generated files {result.out}"
                + (" (removed on exit; keep them with --workdir DIR)" if temp else "")
                + "\n"
            )
            if keep_running:
                out_console.file.write(
                    f"demo: running; try  flobs verify -i {result.inventory} --out "
                    f"{result.out}  — Ctrl-C stops everything\n"
                )
                out_console.file.flush()
                while not stop.wait(0.5):
                    pass
            if not report.ok or result.local_rule_failures:
                raise typer.Exit(int(ExitCode.FINDINGS))
    finally:
        signal.signal(signal.SIGTERM, previous)
        if temp is not None:
            temp.cleanup()
