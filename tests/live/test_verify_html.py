"""--format html: a self-contained page, rendered by headless Chromium and read back."""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

from flobs.live.alerts import ActiveAlert, AlertsSeen
from flobs.live.signals import HostSignals, SignalStatus
from flobs.live.verify import HostStatus, PanelCheck, QueryCheck, VerifyReport
from flobs.live.verify_html import host_matrix, render_html
from tests.conftest import require_tool


def _report() -> VerifyReport:
    report = VerifyReport("http://prom.test:9090", "federation", 15.0)
    report.hosts = [
        HostStatus("h-1", "present", 40, 1.4, ""),
        HostStatus('h-"2"<script>', "stale", 40, 93.0, ""),
        HostStatus("h-3", "missing", 0, None, ""),
    ]
    report.signals = [
        HostSignals("h-1", SignalStatus("present", 2.0, ""), {}, SignalStatus("present", 4.0, "")),
        HostSignals('h-"2"<script>', SignalStatus("missing", None, ""), {}, None),
        HostSignals(
            "h-3", SignalStatus("missing", None, ""), {}, SignalStatus("missing", None, "")
        ),
    ]
    report.alerts = AlertsSeen(
        "alerts API",
        [
            ActiveAlert("FlobsHostDown", "firing", {"host": "h-3"}),
            ActiveAlert("LogShipperDown", "pending", {"host": 'h-"2"<script>'}),
        ],
    )
    q = QueryCheck("panel", "Fleet", "Hosts up [A]", 'count(up{job="federate"} == 1)', "data")
    report.panels = [
        PanelCheck("Fleet", "Hosts up", "data", (q,)),
        PanelCheck("Host", "Errors", "no data", (q,)),
    ]
    return report


EXPECTED = [
    ("h-1", ["ok", "ok", "ok", "ok"], ["ok 1s", "ok 2s", "ok 4s", "none"]),
    (
        'h-"2"<script>',
        ["stale", "missing", "unchecked", "pending"],
        ["stale 93s", "missing", "not checked", "1 pending"],
    ),
    (
        "h-3",
        ["missing", "missing", "missing", "firing"],
        ["missing", "missing", "missing", "1 firing, 0 pending"],
    ),
]


class _Matrix(HTMLParser):
    """Reads the rendered #matrix and #panels tables back out of Chromium's DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str], list[str]]] = []
        self.panels: list[str] = []
        self._cell: dict[str, str] | None = None
        self._text = ""
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("src", "href"):
            if key in a:
                self.external.append(a[key])
        if tag == "tr" and "data-host" in a:
            self.rows.append((a["data-host"], [], []))
        if tag == "td" and "data-signal" in a:
            self._cell, self._text = a, ""
        if tag == "td" and "data-outcome" in a:
            self.panels.append(a["data-outcome"])

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append(self._cell["data-state"])
            self.rows[-1][2].append(self._text)
            self._cell = None


def test_matrix_data() -> None:
    got = [(h, [c[s][0] for s in c], [c[s][1] for s in c]) for h, c in host_matrix(_report())]
    assert got == EXPECTED


def test_page_is_self_contained_and_escapes_everything() -> None:
    page = render_html(_report())
    assert "<script>" not in page
    assert "h-&quot;2&quot;&lt;script&gt;" in page
    assert "default-src 'none'" in page
    assert "<link" not in page and " src=" not in page and "@import" not in page


def test_chromium_renders_the_matrix(tmp_path: Path) -> None:
    chromium = require_tool("chromium", "chromium-browser")
    page = tmp_path / "verify.html"
    page.write_text(render_html(_report()), encoding="utf-8")
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # tests run as root in the CI container
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Matrix()
    dom.feed(proc.stdout)
    assert dom.rows == EXPECTED
    assert dom.panels == ["data", "no data"]
    assert dom.external == []
    assert '<span id="verdict">FAILED</span>' in proc.stdout
