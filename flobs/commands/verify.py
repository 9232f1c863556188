"""`flobs verify`: ask the central Prometheus whether every host's data arrives."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flobs import httpio
from flobs.cli import app, err_console, handle_errors, out_console, out_dir
from flobs.commands import options
from flobs.errors import ExitCode, RemoteError, UsageError
from flobs.inventory import load_fleet
from flobs.live.deep import REL_TOLERANCE
from flobs.live.prometheus_api import PrometheusAPI
from flobs.live.signals import (
    JaegerTraces,
    LogsBackend,
    LokiLogs,
    TempoTraces,
    TracesBackend,
    VictoriaLogsLogs,
)
from flobs.live.verify import PANEL_HOSTS, VerifyReport, verify, verify_until
from flobs.live.verify_exporter import RunRecord, VerifyExporter, parse_listen
from flobs.live.verify_html import render_html
from flobs.promtime import parse_duration

MAX_LISTED = 25


def render_text(
    report: VerifyReport, *, verbose: bool = False, list_panels: bool = True
) -> Iterator[str]:
    """The human report; also used by `flobs demo`."""
    total = len(report.hosts)
    present = total - len(report.failed_hosts)
    yield f"verify {report.prometheus} ({report.mode} mode)\n"
    yield f"hosts: {present}/{total} present\n"
    for h in report.hosts:
        if h.state != "present" or verbose:
            state = "ok" if h.state == "present" else h.state.upper()
            yield f"  {state:<12} {h.name}: {h.detail}\n"
    if report.unexpected_hosts:
        yield (
            "unexpected hosts (at the centre, not in the inventory): "
            + ", ".join(report.unexpected_hosts)
            + "\n"
        )
    for w in report.warnings[:MAX_LISTED]:
        yield f"warning: {w}\n"
    if len(report.warnings) > MAX_LISTED:
        yield f"warning: … and {len(report.warnings) - MAX_LISTED} more\n"
    if report.panels:
        yield panel_summary(report) + "\n"
        for p in report.panels if list_panels else []:
            if p.outcome == "data" and not verbose:
                continue
            line = f"  {p.outcome:<8} {p.dashboard} / {p.title}"
            if p.hosts_without_data and p.outcome == "partial":
                line += f" (no data for {', '.join(p.hosts_without_data[:MAX_LISTED])})"
            yield line + "\n"
            for q in p.queries:
                ref = q.title[len(p.title) :].strip() or "query"
                detail = f": {q.detail}" if q.detail else ""
                yield f"           {ref} {q.outcome}{detail}\n"
                if q.outcome == "error":
                    yield f"             expr: {q.expr}\n"
    rules = [q for q in report.queries if q.kind != "panel"]
    if rules:
        errors = [q for q in rules if q.outcome == "error"]
        empty = [q for q in rules if q.kind == "recording" and q.outcome == "no data"]
        yield (
            f"rules: {len(rules)} expressions, {len(errors)} errors, "
            f"{len(empty)} recording rules without data\n"
        )
        for q in errors:
            yield f"  error    {q.source} / {q.title}: {q.detail}\n           expr: {q.expr}\n"
        for q in empty:
            yield f"  no data  {q.source} / {q.title}\n"
    yield from render_alerts(report)
    yield from render_signals(report, verbose=verbose)
    yield from render_deep(report)
    for note in report.notes:
        yield f"note: {note}\n"
    if report.ok:
        yield "result: OK\n"
    else:
        why = []
        if report.failed_hosts:
            names = ", ".join(h.name for h in report.failed_hosts[:MAX_LISTED])
            why.append(f"{len(report.failed_hosts)} host(s) not present: {names}")
        if report.query_errors:
            why.append(f"{len(report.query_errors)} query error(s)")
        if report.deep_failures:
            names = ", ".join(d.host for d in report.deep_failures[:MAX_LISTED])
            why.append(f"{len(report.deep_failures)} host(s) whose aggregates differ: {names}")
        if report.lost_signals:
            lost = "; ".join(
                f"{s.host}: {', '.join(s.lost)}" for s in report.lost_signals[:MAX_LISTED]
            )
            why.append(f"{len(report.lost_signals)} host(s) losing signals ({lost})")
        yield f"result: FAILED ({'; '.join(why)})\n"


def render_signals(report: VerifyReport, *, verbose: bool = False) -> Iterator[str]:
    if not report.signals:
        return
    for name, backend in report.signal_backends.items():
        have = sum(
            1
            for s in report.signals
            if (st := getattr(s, name)) is not None and st.state == "present"
        )
        yield f"{name}: {have}/{len(report.signals)} hosts ({backend})\n"
    for s in report.signals:
        for name in ("logs", "traces", "correlation"):
            status = getattr(s, name)
            if status is None or (status.state == "present" and not verbose):
                continue
            state = "ok" if status.state == "present" else status.state.upper()
            age = (
                f", newest {status.age_seconds:.0f}s old" if status.age_seconds is not None else ""
            )
            yield f"  {state:<12} {s.host}: {name}: {status.detail}{age}\n"


def render_deep(report: VerifyReport) -> Iterator[str]:
    if report.deep is None:
        return
    good = [d for d in report.deep if d.ok]
    series = sum(d.series for d in report.deep)
    yield (
        f"deep: {len(good)}/{len(report.deep)} hosts' aggregates match their own values "
        f"({series} series; tolerance {REL_TOLERANCE:g} relative)\n"
    )
    for d in report.deep_failures:
        if d.error:
            yield f"  ERROR        {d.host}: {d.error}\n"
        elif d.series == 0:
            yield f"  MISSING      {d.host}: its local Prometheus holds no flobs series\n"
        for m in d.mismatches:
            yield f"  MISMATCH     {m.describe(d.host)}\n"


def panel_summary(report: VerifyReport) -> str:
    """The one panel line, the same numbers as the JSON summary and the demo line."""
    c = report.panel_counts()
    return (
        f"panels: {c.total} ({c.data} with data, {c.partial} partial, {c.no_data} without "
        f"data, {c.errors} errors, {c.skipped} skipped: not Prometheus)"
    )


def render_alerts(report: VerifyReport) -> Iterator[str]:
    seen = report.alerts
    if seen is None:
        return
    firing = [a for a in seen.alerts if a.state == "firing"]
    pending = [a for a in seen.alerts if a.state == "pending"]
    yield f"alerts: {len(firing)} firing, {len(pending)} pending (from the {seen.source})\n"
    for a in seen.alerts[:MAX_LISTED]:
        line = f"  {a.state:<8} {a.describe()}"
        if a.active_since:
            line += f" since {a.active_since}"
        if a.state == "firing" and seen.alertmanagers:
            line += (
                f" -> {', '.join(a.delivered_to)}"
                if a.delivered_to
                else " -> in no Alertmanager yet"
            )
        yield line + "\n"
    if len(seen.alerts) > MAX_LISTED:
        yield f"  … and {len(seen.alerts) - MAX_LISTED} more\n"
    if seen.alertmanagers:
        yield f"alertmanagers: {', '.join(seen.alertmanagers)}\n"
    for note in seen.notes:
        yield f"note: {note}\n"


class VerifyFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


@app.command(
    "verify",
    epilog="Example: flobs verify -i inventory.yaml --out out --prometheus http://127.0.0.1:9090",
)
@handle_errors
def verify_command(
    inventory: Annotated[Path, options.inventory_option()],
    prometheus: Annotated[
        str | None,
        typer.Option(
            "--prometheus",
            metavar="URL",
            help="Base URL of the central Prometheus-compatible query API "
            "(default: central.prometheus.url). Credentials: FLOBS_PROMETHEUS_TOKEN, or "
            "FLOBS_PROMETHEUS_USERNAME + FLOBS_PROMETHEUS_PASSWORD; FLOBS_PROMETHEUS_CA_FILE.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="OUT",
            parser=out_dir,
            help="Generated tree: also run every dashboard panel "
            "query and central rule expression in it.",
        ),
    ] = None,
    output_format: Annotated[
        VerifyFormat,
        typer.Option(
            "--format",
            help="text, json (schemas/verify-report.schema.json) or html (one "
            "self-contained page); on stdout.",
        ),
    ] = VerifyFormat.text,
    stale_after: Annotated[
        str | None,
        typer.Option(
            "--stale-after",
            metavar="DURATION",
            help="A host whose newest series is older than this is stale "
            "(default: 3x the longest interval, +60s in remote_write mode).",
        ),
    ] = None,
    panel_hosts: Annotated[
        int,
        typer.Option(
            "--panel-hosts",
            metavar="N",
            min=0,
            help=f"Run per-host panels for the first N hosts (0: all; default {PANEL_HOSTS}).",
        ),
    ] = PANEL_HOSTS,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="List every host and panel.")
    ] = False,
    wait: Annotated[
        str | None,
        typer.Option(
            "--wait",
            metavar="DURATION",
            help="Re-run until everything passes or DURATION has passed (e.g. 2m, for CI "
            "right after a deploy); progress goes to stderr on a terminal.",
        ),
    ] = None,
    loki: Annotated[
        str | None,
        typer.Option(
            "--loki",
            metavar="URL",
            help="Also check each host's logs (and trace ids in them) in this Loki (base URL).",
        ),
    ] = None,
    tempo: Annotated[
        str | None,
        typer.Option(
            "--tempo",
            metavar="URL",
            help="Also check each host's spans in this Tempo (base URL); with --loki, that "
            "a trace id from the host's logs resolves.",
        ),
    ] = None,
    victorialogs: Annotated[
        str | None,
        typer.Option(
            "--victorialogs",
            metavar="URL",
            help="Like --loki, for logs in VictoriaLogs (base URL; LogsQL).",
        ),
    ] = None,
    jaeger: Annotated[
        str | None,
        typer.Option(
            "--jaeger",
            metavar="URL",
            help="Like --tempo, for spans in Jaeger (query API base URL; service flintlockd).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.1,
            metavar="SECONDS",
            help="Longest wait for one answer from Loki, Tempo or an Alertmanager, "
            "however the server drips it.",
        ),
    ] = 15.0,
    signals_window: Annotated[
        str,
        typer.Option(
            "--signals-window",
            metavar="DURATION",
            help="Logs and spans must have arrived within this window.",
        ),
    ] = "5m",
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also compare every flobs recording series at the centre with the host's "
            "local Prometheus at the same timestamp (reaches each host's local Prometheus).",
        ),
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option("--sample", min=1, help="With --deep: check N random hosts, not all."),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--every",
            metavar="DURATION",
            help="Keep verifying every DURATION (e.g. 60s) until SIGTERM or Ctrl-C; with "
            "--listen, serve the results as Prometheus metrics.",
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="With --every: serve /metrics here (e.g. 127.0.0.1:9465; :PORT is loopback).",
        ),
    ] = None,
) -> None:
    """Check that every inventory host's data reaches the centre and the queries work.

    Exit codes: 0 every host present and no query fails · 1 a host missing or stale,
    or a query fails · 2 bad inventory or usage · 3 Prometheus or a store cannot be
    reached, or the --listen port cannot be bound · 130 interrupted.
    """
    stale = _duration("--stale-after", stale_after)
    wait_seconds = _duration("--wait", wait)
    every_seconds = _duration("--every", every)
    if listen is not None and every_seconds is None:
        raise UsageError("--listen needs --every", hint="e.g. --every 60s --listen 127.0.0.1:9465")
    if every_seconds is not None and wait_seconds is not None:
        raise UsageError("--every and --wait do not go together")
    if every_seconds is not None and every_seconds < 1:
        raise UsageError(f"--every {every!r} is shorter than a second")
    address = parse_listen(listen) if listen is not None else None
    window = _duration("--signals-window", signals_window) or 300.0
    if sample is not None and not deep:
        raise UsageError("--sample needs --deep")
    if loki and victorialogs:
        raise UsageError("--loki and --victorialogs: give one log store")
    if tempo and jaeger:
        raise UsageError("--tempo and --jaeger: give one trace store")
    # Through the one check every URL option gets (as --prometheus): a malformed URL
    # is bad usage here, not an httpx error deep in a request, and credentials in it are
    # refused before they can reach shell history or a report.
    loki, tempo, victorialogs, jaeger = (
        None if value is None else httpio.check_url(value, option, example)
        for option, value, example in (
            ("--loki", loki, "http://loki.example:3100"),
            ("--tempo", tempo, "http://tempo.example:3200"),
            ("--victorialogs", victorialogs, "http://victorialogs.example:9428"),
            ("--jaeger", jaeger, "http://jaeger.example:16686"),
        )
    )
    if out is not None and not (out / "manifest.json").is_file():
        raise UsageError(
            f"--out {out} is not a flobs output tree (no manifest.json)",
            hint="run `flobs generate -i INVENTORY -o OUT` first",
        )
    loaded = load_fleet(inventory)
    for warning in loaded.warnings:
        err_console.print(warning.render(), markup=False)
    url = prometheus or loaded.fleet.central.prometheus.url
    logs: LogsBackend | None = None
    traces: TracesBackend | None = None
    if loki:
        logs = LokiLogs(loki, timeout=timeout)
    elif victorialogs:
        logs = VictoriaLogsLogs(victorialogs, timeout=timeout)
    if tempo:
        traces = TempoTraces(tempo, timeout=timeout)
    elif jaeger:
        traces = JaegerTraces(jaeger, timeout=timeout)
    with PrometheusAPI.from_env(url) as api, contextlib.ExitStack() as stores:
        for store in (logs, traces):
            if store is not None:
                stores.callback(store.close)
        if api.credentials_in_plaintext:
            err_console.print(
                f"warning: {url} is plain http: the credentials from the environment cross "
                "the network unencrypted; use https://",
                markup=False,
            )

        def run() -> VerifyReport:
            return verify(
                loaded.fleet,
                api,
                out=out,
                stale_after=stale,
                panel_hosts=panel_hosts or None,
                logs=logs,
                traces=traces,
                signals_window=window,
                deep=deep,
                deep_sample=sample,
                alertmanager_timeout=timeout,
            )

        if every_seconds is not None:
            _continuously(run, [h.name for h in loaded.fleet.hosts], every_seconds, address)
            return
        if wait_seconds is None:
            report = run()
        else:
            report = verify_until(
                run, wait_seconds, progress=_wait_progress if err_console.is_terminal else None
            )
    if output_format == "json":
        out_console.file.write(report.to_json())
    elif output_format == "html":
        out_console.file.write(render_html(report))
    else:
        for line in render_text(report, verbose=verbose):
            out_console.file.write(line)
    if not report.ok:
        raise typer.Exit(int(ExitCode.FINDINGS))


def _continuously(
    run: Callable[[], VerifyReport],
    hosts: list[str],
    interval: float,
    address: tuple[str, int] | None,
) -> None:
    """``--every``: one summary line per run on stderr; SIGTERM stops cleanly (exit 0)."""

    def said(report: VerifyReport | None, record: RunRecord) -> None:
        if report is None:
            what = f"could not verify: {record.last_error}"
        else:
            present = len(report.hosts) - len(report.failed_hosts)
            what = (
                f"{'OK' if report.ok else 'FAILED'}: {present}/{len(report.hosts)} hosts "
                f"present, {len(report.query_errors)} query errors"
            )
        err_console.print(
            f"verify: run {record.runs} ({record.last_duration:.1f}s): {what}", markup=False
        )

    exporter = VerifyExporter(run, hosts, interval, address or ("127.0.0.1", 0), said)
    if address is not None:
        err_console.print(
            f"verify: every {interval:g}s; metrics at http://{exporter.address}/metrics",
            markup=False,
        )
    previous = signal.signal(signal.SIGTERM, lambda *_: exporter.stop())
    try:
        exporter.serve()
    finally:
        signal.signal(signal.SIGTERM, previous)
    err_console.print("verify: stopped", markup=False)


def _duration(option: str, value: str | None) -> float | None:
    if value is None:
        return None
    ms = parse_duration(value)
    if ms is None:
        raise UsageError(f"{option} {value!r} is not a duration", hint="write it like 90s or 5m")
    return ms / 1000


def _wait_progress(
    attempt: int, report: VerifyReport | None, error: RemoteError | None, left: float
) -> None:
    if report is None:
        why = f"not answering ({error})" if error else "no answer"
    else:
        present = len(report.hosts) - len(report.failed_hosts)
        why = f"{present}/{len(report.hosts)} hosts present"
        if report.query_errors:
            why += f", {len(report.query_errors)} query errors"
    err_console.print(f"verify: attempt {attempt}: {why}; {left:.0f}s left", markup=False)
