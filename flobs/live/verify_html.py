"""``verify --format html``: one self-contained page a person would rather look at.

A host-by-signal matrix (metrics, logs, traces, alerts; each cell ok / stale / missing
with the age of the newest data) and every panel with its status and queries. No
scripts, no fonts, no images, no links to fetch: a Content-Security-Policy of
``default-src 'none'`` makes sure the page cannot load anything, so it can be mailed or
attached to a CI run as is. Every value from the servers is escaped.
"""

from __future__ import annotations

from html import escape

from flobs.live.verify import VerifyReport

SIGNALS = ("metrics", "logs", "traces", "alerts")

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.ok{background:#d8f5d8}.stale{background:#ffe9b3}.missing,.unreachable,.error{background:#f8c9c9}
.firing{background:#f8c9c9}.pending{background:#ffe9b3}.unchecked,.skipped{color:#888}
.partial{background:#ffe9b3}.data{background:#d8f5d8}.nodata{background:#eee}
code{font-size:.9em}
"""


def _cell(signal: str, state: str, text: str) -> str:
    css = state.replace(" ", "")
    return (
        f'<td class="{escape(css)}" data-signal="{escape(signal)}" '
        f'data-state="{escape(state)}">{escape(text)}</td>'
    )


def _age(age: float | None) -> str:
    return "" if age is None else f" {age:.0f}s"


def host_matrix(report: VerifyReport) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """host → signal → (state, text): what the matrix shows, also for tests."""
    signals = {s.host: s for s in report.signals}
    alerts = report.alerts.alerts if report.alerts is not None else []
    rows = []
    for h in report.hosts:
        cells: dict[str, tuple[str, str]] = {}
        state = "ok" if h.state == "present" else h.state
        cells["metrics"] = (state, f"{state}{_age(h.age_seconds)}")
        seen = signals.get(h.name)
        for name in ("logs", "traces"):
            status = getattr(seen, name) if seen is not None else None
            if status is None:
                cells[name] = ("unchecked", "not checked")
            else:
                st = "ok" if status.state == "present" else status.state
                cells[name] = (st, f"{st}{_age(status.age_seconds)}")
        if report.alerts is None:
            cells["alerts"] = ("unchecked", "not checked")
        else:
            mine = [a for a in alerts if a.host == h.name]
            firing = sum(1 for a in mine if a.state == "firing")
            pending = len(mine) - firing
            if firing:
                cells["alerts"] = ("firing", f"{firing} firing, {pending} pending")
            elif pending:
                cells["alerts"] = ("pending", f"{pending} pending")
            else:
                cells["alerts"] = ("ok", "none")
        rows.append((h.name, cells))
    return rows


def render_html(report: VerifyReport) -> str:
    out: list[str] = []
    add = out.append
    verdict = "OK" if report.ok else "FAILED"
    add('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    add(
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    )
    add(f"<title>flobs verify: {escape(verdict)}</title><style>{_STYLE}</style></head><body>")
    add(
        f'<h1>flobs verify: <span id="verdict">{escape(verdict)}</span></h1>'
        f"<p>{escape(report.prometheus)} ({escape(report.mode)} mode); stale after "
        f"{report.stale_after:g}s</p>"
    )
    add('<h2>Hosts</h2><table id="matrix"><thead><tr><th>host</th>')
    add("".join(f"<th>{s}</th>" for s in SIGNALS) + "</tr></thead><tbody>")
    for host, cells in host_matrix(report):
        add(f'<tr data-host="{escape(host)}"><th>{escape(host)}</th>')
        add("".join(_cell(s, *cells[s]) for s in SIGNALS) + "</tr>")
    add("</tbody></table>")
    if report.unexpected_hosts:
        add(
            "<p>Unexpected hosts (at the centre, not in the inventory): "
            + escape(", ".join(report.unexpected_hosts))
            + "</p>"
        )
    if report.panels:
        c = report.panel_counts()
        add(
            f'<h2>Panels</h2><p id="panel-summary">{c.total} panels: {c.data} with data, '
            f"{c.partial} partial, {c.no_data} without data, {c.errors} errors, "
            f"{c.skipped} skipped</p>"
        )
        add('<table id="panels"><thead><tr><th>dashboard</th><th>panel</th><th>status</th>')
        add("<th>queries</th></tr></thead><tbody>")
        for p in report.panels:
            css = p.outcome.replace(" ", "")
            queries = "<br>".join(
                f"<code>{escape(q.expr)}</code>: {escape(q.outcome)}"
                + (f" ({escape(q.detail)})" if q.detail else "")
                for q in p.queries
            )
            add(
                f"<tr><td>{escape(p.dashboard)}</td><td>{escape(p.title)}</td>"
                f'<td class="{css}" data-outcome="{escape(p.outcome)}">{escape(p.outcome)}</td>'
                f"<td>{queries}</td></tr>"
            )
        add("</tbody></table>")
    if report.alerts is not None and report.alerts.alerts:
        add('<h2>Alerts</h2><table id="alerts"><tbody>')
        for a in report.alerts.alerts:
            add(
                f'<tr><td class="{a.state}">{a.state}</td><td>{escape(a.describe())}</td>'
                f"<td>{escape(', '.join(a.delivered_to))}</td></tr>"
            )
        add("</tbody></table>")
    if report.deep is not None:
        add("<h2>Aggregation accuracy (--deep)</h2><ul>")
        for d in report.deep:
            if d.ok:
                add(f'<li class="ok">{escape(d.host)}: {d.series} series match</li>')
            for m in d.mismatches:
                add(f'<li class="error">{escape(m.describe(d.host))}</li>')
            if d.error:
                add(f'<li class="error">{escape(d.host)}: {escape(d.error)}</li>')
        add("</ul>")
    notes = report.warnings + report.notes
    if notes:
        add("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    add("</body></html>\n")
    return "".join(out)
