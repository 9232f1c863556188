"""Render a validation result: text, json, junit, github. Pure functions, no printing.

Each format escapes for its reader: JSON through ``json.dumps``; JUnit through
ElementTree plus removal of the characters XML 1.0 cannot carry at all; GitHub
workflow commands with the runner's own percent-encoding (``%``, CR, LF in the
message; also ``:`` and ``,`` in properties), so a hostile host name cannot end an
annotation early or forge another one.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import replace
from itertools import groupby
from typing import Any, Literal

from flobs import __version__
from flobs.problems import Problem, Severity
from flobs.redact import redact
from flobs.validate import CheckRun, ValidateResult

Format = Literal["text", "json", "junit", "github"]
FORMATS: tuple[str, ...] = ("text", "json", "junit", "github")
REPORT_VERSION = 1  # bump when a field of the json report changes meaning or goes away
FLEET = "(fleet)"  # where a finding about no single file is filed


def render(result: ValidateResult, fmt: str, *, base: str = "") -> str:
    """``base`` is prepended to file paths in ``github`` annotations (OUT as given).

    Every text field goes through the redaction layer before any format escapes it,
    so a secret is hidden in every format alike (an escaped secret would not match).
    """
    result = redacted_result(result)
    base = redact(base)
    if fmt == "text":
        return render_text(result.problems, result)
    if fmt == "json":
        return render_json(result)
    if fmt == "junit":
        return render_junit(result)
    if fmt == "github":
        notices = "".join(
            f"::notice title={_gh_property('flobs validate')}::{_gh_data(line)}\n"
            for line in _tuning_lines(result)
        )
        return render_github(result.problems, base=base) + notices
    raise ValueError(f"unknown report format {fmt!r}")


def redacted_problem(p: Problem) -> Problem:
    return replace(
        p,
        file=None if p.file is None else redact(p.file),
        message=redact(p.message),
        hint=None if p.hint is None else redact(p.hint),
        key_path=None if p.key_path is None else redact(p.key_path),
    )


def redacted_result(result: ValidateResult) -> ValidateResult:
    return replace(
        result,
        problems=tuple(redacted_problem(p) for p in result.problems),
        notes=tuple(redact(n) for n in result.notes),
    )


# --------------------------------------------------------------------------- text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_text(problems: Iterable[Problem], result: ValidateResult | None = None) -> str:
    """Problems grouped per file, then a one-line summary."""
    items = list(problems)
    lines: list[str] = []
    for file, group in groupby(items, key=lambda p: p.file or FLEET):
        lines.append(file)
        for p in group:
            where = f"{p.line}:{p.col or 1}" if p.line else "-"
            path = f"{p.key_path}: " if p.key_path else ""
            lines.append(f"  {where:<8} {p.severity.value:<8} {p.check_id:<22} {path}{p.message}")
            if p.hint:
                lines.append(f"  {'':<8} {'':<8} {'':<22} hint: {p.hint}")
        lines.append("")
    errors = sum(p.severity is Severity.ERROR for p in items)
    warnings = sum(p.severity is Severity.WARNING for p in items)
    files = len({p.file for p in items})
    summary = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    if items:
        summary += f" in {_plural(files, 'file')}"
    if result is not None:
        ran = [c for c in result.checks if c.skipped is None]
        summary += f" ({_plural(len(ran), 'check')} over {_plural(result.files, 'file')}"
        skipped = len(result.checks) - len(ran)
        summary += f", {skipped} skipped)" if skipped else ")"
    lines.append(summary)
    if result is not None:
        lines.extend(_tuning_lines(result))
    # Text is for terminals: make control characters visible instead of acting on them.
    return "\n".join(_visible(x) for x in lines) + "\n"


def _tuning_lines(result: ValidateResult) -> list[str]:
    """What was turned off, so a clean report cannot hide a disabled check."""
    lines = []
    for d in result.disabled:
        lines.append(f"disabled: {d.id} (by {d.by})")
    if result.suppressed:
        lines.append(
            f"suppressed: {_plural(result.suppressed, 'finding')} "
            "(validation.ignore or # flobs: disable comments)"
        )
    return lines


# Everything but tab: a newline inside a message would forge a line of the report.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _visible(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# --------------------------------------------------------------------------- json


def problem_dict(p: Problem) -> dict[str, Any]:
    return {
        "file": p.file,
        "line": p.line,
        "column": p.col,
        "check": p.check_id,
        "severity": p.severity.value,
        "message": p.message,
        "hint": p.hint,
        "key_path": p.key_path,
    }


def render_json(result: ValidateResult) -> str:
    """The stable report documented by ``schemas/validate-report.schema.json``."""
    doc = {
        "report_version": REPORT_VERSION,
        "generator": "flobs",
        "flobs_version": __version__,
        "out": str(result.out),
        "ok": not result.failed,
        "strict": result.strict,
        "summary": {
            "errors": result.errors,
            "warnings": result.warnings,
            "infos": sum(p.severity is Severity.INFO for p in result.problems),
            "files": result.files,
            "checks": sum(c.skipped is None for c in result.checks),
        },
        "checks": [_check_dict(c) for c in result.checks],
        "problems": [problem_dict(p) for p in result.problems],
        "notes": list(result.notes),
        "disabled_checks": [{"id": d.id, "by": d.by} for d in result.disabled],
        "suppressed": result.suppressed,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _check_dict(c: CheckRun) -> dict[str, Any]:
    out: dict[str, Any] = {"id": c.id, "title": c.title, "files": len(c.files)}
    if c.skipped is not None:
        out["skipped"] = c.skipped
    return out


# --------------------------------------------------------------------------- junit

# XML 1.0 cannot represent these at all, escaped or not.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def render_junit(result: ValidateResult) -> str:
    """One testsuite per check, one testcase per file it looked at (failures attached).

    Errors are ``<failure>``; warnings are failures with ``--strict`` and otherwise
    go to the testcase's ``<system-out>``, so CI UIs show them without failing.
    """
    by_check: dict[str, dict[str, list[Problem]]] = {}
    for p in result.problems:
        by_check.setdefault(p.check_id, {}).setdefault(p.file or FLEET, []).append(p)
    root = ET.Element("testsuites", name="flobs validate")
    total = failed_total = 0
    titles = {c.id: c.title for c in result.checks}
    files_of = {c.id: c.files for c in result.checks}
    skipped = {c.id: c.skipped for c in result.checks if c.skipped is not None}
    skipped_total = 0
    for check_id in sorted(set(titles) | set(by_check)):
        if check_id in skipped and check_id not in by_check:
            # A check that did not run is no passed testcase: one skipped case, with why.
            suite = ET.SubElement(root, "testsuite", name=_xml(check_id))
            case = ET.SubElement(suite, "testcase", classname=_xml(check_id), name="(skipped)")
            ET.SubElement(case, "skipped", message=_xml(skipped[check_id]))
            for key, value in (("tests", 1), ("failures", 0), ("errors", 0), ("skipped", 1)):
                suite.set(key, str(value))
            skipped_total += 1
            continue
        found = by_check.get(check_id, {})
        files = list(dict.fromkeys([*files_of.get(check_id, ()), *sorted(found)]))
        if not files:
            files = ["(all files)"]
        suite = ET.SubElement(root, "testsuite", name=_xml(check_id))
        failures = 0
        for file in files:
            case = ET.SubElement(suite, "testcase", classname=_xml(check_id), name=_xml(file))
            if file not in (FLEET, "(all files)"):
                case.set("file", _xml(file))
            problems = found.get(file, [])
            failing = [
                p
                for p in problems
                if p.severity is Severity.ERROR
                or (result.strict and p.severity is Severity.WARNING)
            ]
            if failing:
                failures += 1
                first = failing[0]
                el = ET.SubElement(
                    case, "failure", message=_xml(first.message), type=first.severity.value
                )
                el.text = _xml("\n".join(_problem_line(p) for p in failing))
            rest = [p for p in problems if p not in failing]
            if rest:
                out = ET.SubElement(case, "system-out")
                out.text = _xml("\n".join(_problem_line(p) for p in rest))
        suite.set("tests", str(len(files)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        total += len(files)
        failed_total += failures
    skipped_count = skipped_total
    if result.disabled:
        # One skipped testcase per disabled check: CI UIs show it, nothing is hidden.
        suite = ET.SubElement(root, "testsuite", name="disabled checks")
        for d in result.disabled:
            case = ET.SubElement(suite, "testcase", classname=_xml(d.id), name="(disabled)")
            ET.SubElement(case, "skipped", message=_xml(f"disabled by {d.by}"))
        suite.set("tests", str(len(result.disabled)))
        suite.set("failures", "0")
        suite.set("errors", "0")
        suite.set("skipped", str(len(result.disabled)))
        skipped_count += len(result.disabled)
    root.set("tests", str(total + skipped_count))
    root.set("failures", str(failed_total))
    root.set("errors", "0")
    if skipped_count:
        root.set("skipped", str(skipped_count))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _problem_line(p: Problem) -> str:
    text = f"{p.location}: {p.severity.value}: {p.message}"
    if p.hint:
        text += f" (hint: {p.hint})"
    return text


# --------------------------------------------------------------------------- github

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(problems: Iterable[Problem], *, base: str = "") -> str:
    """GitHub Actions workflow commands: ``::error file=…,line=…,title=…::message``."""
    lines = []
    prefix = base.rstrip("/") + "/" if base else ""
    for p in problems:
        props = []
        if p.file:
            props.append(f"file={_gh_property(prefix + p.file)}")
            if p.line:
                props.append(f"line={p.line}")
                if p.col:
                    props.append(f"col={p.col}")
        props.append(f"title={_gh_property(f'flobs {p.check_id}')}")
        message = p.message if not p.key_path else f"{p.key_path}: {p.message}"
        if p.hint:
            message += f"\nhint: {p.hint}"
        lines.append(f"::{_LEVEL[p.severity]} {','.join(props)}::{_gh_data(message)}")
    return "".join(line + "\n" for line in lines)
