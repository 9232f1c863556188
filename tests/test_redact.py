"""The redaction layer: what it hides, and that every choke point goes through it."""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flobs import redact
from flobs.errors import RemoteError, ToolFailure
from flobs.problems import Problem, Severity
from flobs.report import FORMATS, render
from flobs.validate import ValidateResult

SECRET = 'Tok"en/with&<odd> chars+=%'


def test_a_registered_secret_is_hidden_in_every_echoed_form() -> None:
    redact.register(SECRET)
    forms = [
        SECRET,
        json.dumps(SECRET)[1:-1],
        "Tok%22en%2Fwith%26%3Codd%3E%20chars%2B%3D%25",
        "Tok%22en%2Fwith%26%3Codd%3E+chars%2B%3D%25",
        "Tok&quot;en/with&amp;&lt;odd&gt; chars+=%",
    ]
    for form in forms:
        assert redact.redact(f"server said [{form}]") == "server said [***]", form


def test_basic_auth_hides_the_password_and_the_header_base64() -> None:
    redact.register_basic_auth("ci-user", "Pw-7f3a9c-basic")
    header = base64.b64encode(b"ci-user:Pw-7f3a9c-basic").decode()
    assert redact.redact(f"Authorization: Basic {header}") == "Authorization: Basic ***"
    assert redact.redact("password Pw-7f3a9c-basic refused") == "password *** refused"


def test_url_userinfo_is_always_hidden_registered_or_not() -> None:
    text = "push to https://bob:hunter22@loki.example/loki and ftp://anon@files.example/x"
    assert (
        redact.redact(text) == "push to https://***@loki.example/loki and ftp://***@files.example/x"
    )
    assert redact.strip_userinfo("https://bob:hunter22@loki.example:3100/p?q=1") == (
        "https://loki.example:3100/p?q=1"
    )
    redact.register_url("https://bob:hunter22@loki.example")
    assert redact.redact("the password was hunter22") == "the password was ***"


def test_short_values_are_not_secrets() -> None:
    redact.register("abc", "", None)
    assert redact.registered() == frozenset()
    assert redact.redact("abc") == "abc"


def test_a_longer_secret_containing_a_shorter_one_is_hidden_whole() -> None:
    redact.register("abcd-1234", "abcd-1234-efgh-5678")
    assert redact.redact("x abcd-1234-efgh-5678 y abcd-1234") == "x *** y ***"


def test_error_messages_and_hints_are_redacted_at_construction() -> None:
    redact.register("Tok-in-an-error-0001")
    err = RemoteError("server said Tok-in-an-error-0001", hint="not Tok-in-an-error-0001")
    assert (err.message, err.hint, str(err)) == ("server said ***", "not ***", "server said ***")
    tool = ToolFailure(["promtool"], 1, "line 3: Tok-in-an-error-0001")
    assert "Tok-in-an-error-0001" not in tool.message


def test_the_stream_redacts_each_write_into_the_current_sys_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redact.register("Tok-stream-0002")
    target = io.StringIO()
    monkeypatch.setattr(sys, "stdout", target)
    stream = redact.redacting("stdout")
    stream.write("a Tok-stream-0002 b\n")
    assert target.getvalue() == "a *** b\n"


def test_the_stream_takes_bytes_as_text_and_refuses_the_binary_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # click.echo writes bytes to a stream it found no binary writer for; an empty
    # write(b"") is its probe, which a text stream must refuse.
    redact.register("Tok-stream-0004")
    target = io.StringIO()
    monkeypatch.setattr(sys, "stdout", target)
    stream = redact.redacting("stdout")
    data = b"x Tok-stream-0004 https://u:pw@h/ y\n"
    assert stream.write(data) == len(data)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        stream.write(b"")  # type: ignore[arg-type]
    assert target.getvalue() == "x *** https://***@h/ y\n"


def test_log_records_are_redacted_when_created() -> None:
    redact.install_log_redaction()
    redact.register("Tok-log-0003")
    logs = io.StringIO()
    logger = logging.getLogger("flobs.test.redact")
    handler = logging.StreamHandler(logs)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("headers %r", [(b"Authorization", b"Bearer Tok-log-0003")])
    finally:
        logger.removeHandler(handler)
    assert logs.getvalue() == "headers [(b'Authorization', b'Bearer ***')]\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_report_format_hides_secrets_field_by_field(fmt: str) -> None:
    """Redaction happens before each format escapes, so an XML- or JSON-escaped
    secret cannot slip past, and the report still parses."""
    redact.register(SECRET)
    problem = Problem(
        f"hosts/{SECRET}.yml", 3, 1, "schema", Severity.ERROR, f"bad {SECRET}", f"hint {SECRET}"
    )
    result = ValidateResult(Path("out"), (problem,), (), (f"note {SECRET}",), 1)
    text = render(result, fmt, base="out")
    for form in (SECRET, json.dumps(SECRET)[1:-1], "Tok&quot;en", "Tok%22en", 'Tok\\"en'):
        assert form not in text, form
    assert "bad ***" in text
    if fmt == "json":
        assert json.loads(text)["problems"][0]["message"] == "bad ***"
    if fmt == "junit":
        ET.fromstring(text.split("\n", 1)[1])  # noqa: S314 - our own output


def test_generated_files_pass_through_the_layer() -> None:
    redact.register("Tok-file-0004")
    assert redact.redact_bytes(b"token: Tok-file-0004\n") == b"token: ***\n"
    assert redact.redact_bytes(b"url: https://u:p@h/x\n") == b"url: https://***@h/x\n"
    binary = b"\xff\xfe Tok-file-0004"
    assert redact.redact_bytes(binary) == binary
