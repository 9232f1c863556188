"""`flobs simulate`: one simulated Flintlock host, serving on the inventory's endpoints."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from flobs.cli import app, err_console, handle_errors
from flobs.commands import options
from flobs.errors import UsageError
from flobs.inventory import load_fleet
from flobs.sim.host import SimulatedHost


@app.command(
    "simulate",
    epilog="Example: flobs simulate fl-eu1-a-01 -i inventory.yaml --duration 60",
)
@handle_errors
def simulate_command(
    host: Annotated[
        str,
        typer.Argument(
            metavar="HOST", show_default=False, help="The inventory host to impersonate."
        ),
    ],
    inventory: Annotated[Path, options.inventory_option()],
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="Traffic, microVMs and log lines are a function of the seed (and elapsed time).",
        ),
    ] = 1,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            metavar="FILE",
            dir_okay=False,
            help="Append logrus JSON lines here instead of the host's vars.logs.path.",
        ),
    ] = None,
    no_logs: Annotated[bool, typer.Option("--no-logs", help="Write no log lines.")] = False,
    duration: Annotated[
        float,
        typer.Option(
            "--duration",
            metavar="SECONDS",
            min=0,
            help="Stop after this many seconds (0: run until Ctrl-C or SIGTERM).",
        ),
    ] = 0,
) -> None:
    """Serve a simulated Flintlock host: flintlockd /metrics, flintlock-metrics /machine, logs.

    Exit codes: 0 stopped by --duration or SIGTERM · 2 bad inventory or unknown host ·
    3 a port could not be bound · 130 interrupted (Ctrl-C).
    """
    fleet = load_fleet(inventory).fleet
    try:
        target = fleet.host(host)
    except KeyError:
        known = ", ".join(h.name for h in fleet.hosts[:10])
        raise UsageError(
            f"host `{host}` is not in {inventory}", hint=f"hosts in the inventory: {known}"
        ) from None
    sim = SimulatedHost(fleet, target, seed=seed, log_file=log_file, write_logs=not no_logs)
    done = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    # Started before the handler is installed: a start that fails (a port in use) must
    # leave SIGTERM as it was (in-process callers, tests, keep their handler).
    endpoints = sim.start()
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        err_console.print(f"simulating {target.name} (seed {seed}):", markup=False)
        for what, where in (
            ("flintlockd", endpoints.flintlockd),
            ("flintlock-metrics", endpoints.flintlock_metrics),
            ("logs", endpoints.log_file),
        ):
            err_console.print(f"  {what:<18} {where or 'off'}", markup=False)
        # wait() with a timeout keeps Ctrl-C deliverable to the main thread.
        limit = duration or float("inf")
        waited = 0.0
        while not done.wait(0.5) and waited < limit:
            waited += 0.5
    finally:
        sim.stop()
        signal.signal(signal.SIGTERM, previous)
