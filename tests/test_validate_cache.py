"""Incremental validate: per-file results reused by sha256, never trusted when damaged,
identical reports with and without the cache, and the same in one process or a pool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flobs import validate as validate_module
from flobs.checks import FileCheck, all_checks
from flobs.errors import UsageError
from flobs.report import render
from flobs.validate import ValidateResult, validate
from tests.checks.conftest import rehash
from tests.conftest import EXAMPLE_INVENTORY, require_major
from tests.helpers import run_flobs

HOST = "hosts/fl-eu1-a-01"
PROM = f"{HOST}/prometheus.yml"
# Every per-file check and fact that applies to a host's prometheus.yml (tools off).
PROM_RUNNERS = {
    "facts:closure",
    "facts:prom-refs",
    "file-parses",
    "prom-external-labels",
    "prom-job-unique",
    "prom-timeout",
    "prom-version-keys",
    "promql-parse",
    "schema",
    "xref-ports",
}


@pytest.fixture
def out(example_out: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(example_out, copy)
    return copy


def _run(out: Path, cache: Path | None, **kw: Any) -> ValidateResult:
    return validate(
        out,
        inventory=kw.pop("inventory", EXAMPLE_INVENTORY),
        tools="off",
        cache_dir=cache,
        use_cache=cache is not None,
        **kw,
    )


def _report(result: ValidateResult) -> str:
    return render(result, "json")


def _pack(cache: Path) -> Path:
    (pack,) = (cache / "validate").glob("*.json")
    return pack


def test_unchanged_tree_reuses_every_result_and_reports_the_same(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = _run(out, cache)
    assert cold.cache is not None
    computed = cold.cache.misses
    assert (cold.cache.hits, cold.cache.ignored, cold.cache.pack) == (0, 0, "none")
    assert cold.cache.written
    warm = _run(out, cache)
    assert warm.cache is not None
    assert (warm.cache.hits, warm.cache.misses, warm.cache.ignored) == (computed, 0, 0)
    assert (warm.cache.pack, warm.cache.written) == ("loaded", False)
    assert _report(warm) == _report(cold) == _report(_run(out, None))


def test_a_hand_edited_file_is_checked_again_and_reported(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = _run(out, cache)
    assert cold.cache is not None and not cold.failed
    text = (out / PROM).read_text()
    (out / PROM).write_text(text.replace("scrape_timeout: 10s", "scrape_timeout: 10m", 1))
    edited = _run(out, cache)
    assert edited.cache is not None
    # Only that file's per-file results are computed again.
    assert edited.cache.misses == len(PROM_RUNNERS)
    assert edited.cache.hits == cold.cache.misses - len(PROM_RUNNERS)
    found = {(p.file, p.check_id) for p in edited.problems}
    assert (PROM, "manifest-hash") in found and (PROM, "prom-timeout") in found
    assert _report(edited) == _report(_run(out, None))


def test_another_inventory_recomputes_only_the_checks_that_read_it(
    out: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cold = _run(out, cache)
    assert cold.cache is not None
    inventory = tmp_path / "inventory.yaml"
    text = EXAMPLE_INVENTORY.read_text()
    inventory.write_text(text.replace("cluster: eu1", "cluster: eu2", 1))
    assert inventory.read_text() != text
    again = _run(out, cache, inventory=inventory)
    assert again.cache is not None
    ctx_files = validate_module.CheckContext(out, None).index
    expected = sum(
        len(ctx_files.select(c.FILES))
        for c in all_checks()
        if issubclass(c, FileCheck) and c.USES_INVENTORY
    )
    assert again.cache.misses == expected
    assert again.cache.hits == cold.cache.misses - expected
    assert any(p.check_id == "prom-external-labels" for p in again.problems)
    assert _report(again) == _report(_run(out, None, inventory=inventory))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"\x00\xff" + b[2:], id="binary garbage"),
        pytest.param(lambda b: b"[]", id="another shape"),
        pytest.param(
            lambda b: b.replace(b"flobs-validate-cache/1", b"flobs-validate-cache/9"), id="format"
        ),
    ],
)
def test_a_damaged_pack_is_ignored_and_rewritten(out: Path, tmp_path: Path, damage: Any) -> None:
    cache = tmp_path / "cache"
    cold = _run(out, cache)
    assert cold.cache is not None
    pack = _pack(cache)
    pack.write_bytes(damage(pack.read_bytes()))
    again = _run(out, cache)
    assert again.cache is not None
    assert again.cache.pack.startswith("ignored: ")
    assert (again.cache.hits, again.cache.misses) == (0, cold.cache.misses)
    assert again.cache.written
    assert _report(again) == _report(cold)
    third = _run(out, cache)
    assert third.cache is not None
    assert (third.cache.pack, third.cache.hits, third.cache.misses) == (
        "loaded",
        cold.cache.misses,
        0,
    )


def test_a_malformed_entry_is_ignored_never_trusted(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = _run(out, cache)
    assert cold.cache is not None
    pack = _pack(cache)
    doc = json.loads(pack.read_bytes())
    # A forged finding in a row of the wrong shape: neither it nor its neighbours count.
    doc["files"][PROM][1]["prom-timeout"] = [[PROM, 1, 1, "error", "forged"]]
    pack.write_text(json.dumps(doc))
    again = _run(out, cache)
    assert again.cache is not None
    assert (again.cache.ignored, again.cache.misses) == (1, len(PROM_RUNNERS))
    assert "forged" not in _report(again)
    assert _report(again) == _report(cold)


def test_an_entry_for_other_bytes_is_not_used(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _run(out, cache)
    pack = _pack(cache)
    doc = json.loads(pack.read_bytes())
    # A well-formed finding recorded for other bytes of the file: not this file's.
    doc["files"][PROM] = ["0" * 64, {"prom-timeout": [[PROM, 1, 1, "error", "stale", None, None]]}]
    pack.write_text(json.dumps(doc))
    again = _run(out, cache)
    assert again.cache is not None
    assert (again.cache.ignored, again.cache.misses) == (0, len(PROM_RUNNERS))
    assert "stale" not in _report(again)


def test_results_of_other_code_or_another_out_are_not_used(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = _run(out, cache)
    assert cold.cache is not None
    pack = _pack(cache)
    doc = json.loads(pack.read_bytes())
    doc["contexts"] = {rid: "0" * 32 for rid in doc["contexts"]}  # another flobs version
    pack.write_text(json.dumps(doc))
    again = _run(out, cache)
    assert again.cache is not None
    assert (again.cache.pack, again.cache.hits) == ("loaded", 0)
    assert again.cache.misses == cold.cache.misses
    # A copy of this OUT elsewhere has its own pack; a pack renamed to it is foreign.
    other = tmp_path / "other"
    shutil.copytree(out, other)
    first = _run(other, cache)
    assert first.cache is not None and first.cache.pack == "none"
    theirs = next(p for p in (cache / "validate").glob("*.json") if p != pack)
    shutil.copyfile(pack, theirs)
    foreign = _run(other, cache)
    assert foreign.cache is not None
    assert foreign.cache.pack == "ignored: written for another OUT"
    assert foreign.cache.hits == 0


def test_the_pack_holds_no_file_content(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    text = (out / PROM).read_text()
    # A hand edit carrying a credential; its finding is stored, the credential is not.
    (out / PROM).write_text(text + "# https://admin:hunter2-not-in-cache@example.com\n")
    result = _run(out, cache)
    assert any(p.check_id == "manifest-hash" for p in result.problems)
    data = _pack(cache).read_bytes()
    assert b"hunter2" not in data
    # Only problems and derived facts (job names, rule_files patterns), no values.
    assert "127.0.0.1:10500" in text and b"127.0.0.1:10500" not in data
    assert oct(_pack(cache).stat().st_mode & 0o777) == oct(0o600)


def test_cache_dir_inside_out_is_refused(out: Path) -> None:
    with pytest.raises(UsageError, match="inside OUT"):
        _run(out, out / ".cache")
    r = run_flobs("validate", str(out), "--cache-dir", str(out / "c"))
    assert (r.code, r.stdout) == (2, "")
    assert "--cache-dir" in r.stderr and "inside OUT" in r.stderr
    assert not (out / "c").exists()


def test_default_cache_inside_out_is_not_used(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(out / "xdg"))
    result = validate(out, inventory=EXAMPLE_INVENTORY, tools="off")
    assert result.cache is None
    assert f"the cache directory {out / 'xdg' / 'flobs'} is inside OUT: not used" in result.notes
    assert not (out / "xdg").exists()


def test_cli_stats_and_no_cache(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["validate", str(out), "-i", str(EXAMPLE_INVENTORY), "--tools", "off", "--stats"]
    first = run_flobs(*args, "--cache-dir", str(cache))
    assert first.code == 0
    n = _run(out, tmp_path / "count").cache  # the same run in-process, its own cache
    assert n is not None
    files = sum(1 for p in out.rglob("*") if p.is_file())
    assert (
        f"stats: {files} files, 1 process; cache: 0 results reused, {n.misses} computed, "
        "0 entries ignored; pack none, written"
    ) in first.stderr
    second = run_flobs(*args, "--cache-dir", str(cache))
    assert (second.code, second.stdout) == (0, first.stdout)
    assert (
        f"stats: {files} files, 1 process; cache: {n.misses} results reused, 0 computed, "
        "0 entries ignored; pack loaded"
    ) in second.stderr
    third = run_flobs(*args, "--no-cache", "--cache-dir", str(tmp_path / "x"))
    assert (third.code, third.stdout) == (0, first.stdout)
    assert f"stats: {files} files, 1 process; cache off (--no-cache)" in third.stderr
    assert not (tmp_path / "x").exists()


def test_two_validates_at_once_share_a_cache(out: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    argv = [
        sys.executable, "-m", "flobs", "validate", str(out), "-i", str(EXAMPLE_INVENTORY),
        "--tools", "off", "--format", "json", "--cache-dir", str(cache),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs[0][0] == outputs[1][0]
    # Whichever wrote last, the pack is whole and every result in it is usable.
    again = _run(out, cache)
    assert again.cache is not None
    assert (again.cache.pack, again.cache.misses, again.cache.ignored) == ("loaded", 0, 0)
    assert not list((cache / "validate").glob(".pack-*"))  # no temporary file left


def test_pool_and_one_process_report_the_same(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (out / PROM).read_text()
    (out / PROM).write_text(text.replace("scrape_timeout: 10s", "scrape_timeout: 10m", 1))
    (out / f"{HOST}/promtail.yml").write_text("server: [\n")  # does not parse
    rehash(out)
    serial = _run(out, None)
    monkeypatch.setattr(validate_module, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(validate_module, "_worker_count", lambda: 2)
    pooled = _run(out, tmp_path / "cache")
    assert pooled.workers == 2 and serial.workers == 1
    assert {(p.file, p.check_id) for p in pooled.problems} >= {
        (PROM, "prom-timeout"),
        (f"{HOST}/promtail.yml", "file-parses"),
    }
    assert _report(pooled) == _report(serial)
    again = _run(out, tmp_path / "cache")  # a pool's results are cached like any
    assert again.cache is not None and again.cache.misses == 0
    assert _report(again) == _report(serial)


def test_a_crash_in_a_worker_is_exit_3_naming_the_check(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flobs.checks.prometheus import ScrapeTimeout

    def boom(self: Any, ctx: Any, path: str) -> Any:
        raise KeyError("deliberate")

    monkeypatch.setattr(ScrapeTimeout, "check_file", boom)
    monkeypatch.setattr(validate_module, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(validate_module, "_worker_count", lambda: 2)
    with pytest.raises(Exception, match="check prom-timeout crashed: KeyError: 'deliberate'"):
        _run(out, None)


def test_each_file_is_parsed_at_most_once(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flobs import yamlio

    parsed: dict[str, int] = {}
    for name in ("load", "load_json"):
        real = getattr(yamlio, name)

        def counting(text: str, _real: Any = real) -> Any:
            parsed[text] = parsed.get(text, 0) + 1
            return _real(text)

        monkeypatch.setattr(yamlio, name, counting)
    _run(out, None)
    assert parsed  # the checks did parse through yamlio
    # Files with identical content (the deploy records of several machines) are parsed
    # once each at most; a text that is no whole file (a body re-read without its
    # header, as the closure once did) may not be parsed at all.
    copies: dict[str, int] = {}
    for p in out.rglob("*"):
        if p.is_file():
            text = p.read_bytes().decode("utf-8", "replace")
            copies[text] = copies.get(text, 0) + 1
    assert {t[:60]: n for t, n in parsed.items() if n > copies.get(t, 0)} == {}


# --------------------------------------------------------------------------- property


EDITS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                PROM,
                f"{HOST}/rules/flobs-local.yml",
                f"{HOST}/otelcol.yaml",
                f"{HOST}/promtail.yml",
                "central/prometheus.yml",
                "central/rules/flobs-alerts.yml",
                "manifest.json",
            ]
        ),
        st.sampled_from(["append", "replace", "break", "delete", "rehash", "extra"]),
        st.text(alphabet="abc:{}[]- \n'\"", max_size=12),
    ),
    min_size=1,
    max_size=4,
)


def _edit(out: Path, rel: str, how: str, junk: str) -> None:
    path = out / rel
    if how == "extra":
        (out / "central/rules/extra.yml").write_text(f"groups: []\n# {junk!r}\n")
    elif not path.exists():
        return
    elif how == "append":
        path.write_text(path.read_text() + f"\n# {junk!r}\n")
    elif how == "replace":
        path.write_text(path.read_text().replace("10s", "10m", 1).replace("1", "7", 1))
    elif how == "break":
        path.write_text(path.read_text() + junk)
    elif how == "delete":
        path.unlink()
    elif how == "rehash" and (out / "manifest.json").exists():
        rehash(out)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=EDITS)
def test_cached_and_uncached_validate_report_the_same(
    example_out: Path, tmp_path: Path, edits: list[tuple[str, str, str]]
) -> None:
    # One OUT and one cache for every example: each run starts from what the previous
    # examples left in the cache, hits and stale entries alike.
    out, cache = tmp_path / "out", tmp_path / "cache"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(example_out, out)
    assert _report(_run(out, cache)) == _report(_run(out, None))
    for rel, how, junk in edits:
        _edit(out, rel, how, junk)
        cached = _run(out, cache)
        assert _report(cached) == _report(_run(out, None))


def test_real_promtool_results_are_reused_until_their_inputs_change(
    out: Path, tmp_path: Path
) -> None:
    require_major("promtool", 3)
    require_major("promtool", 2)
    cache = tmp_path / "cache"

    def run() -> ValidateResult:
        return validate(out, inventory=EXAMPLE_INVENTORY, tools="auto", cache_dir=cache)

    cold = run()
    assert cold.cache is not None
    ran = {c.id: c for c in cold.checks}
    assert ran["promtool-test"].skipped is None and ran["promtool-rules"].skipped is None
    warm = run()
    assert warm.cache is not None
    assert (warm.cache.hits, warm.cache.misses) == (cold.cache.misses, 0)
    assert _report(warm) == _report(cold)
    # A central rules file changes: its own results and the unit tests run again (one
    # promtool-test verdict for the test file, which loads every central rules file).
    rules = out / "central/rules/flobs-alerts.yml"
    rules.write_text(rules.read_text() + "# a comment\n")
    edited = run()
    assert edited.cache is not None
    per_file = {
        c.ID
        for c in all_checks()
        if (issubclass(c, FileCheck) or c.ID in ("promtool-rules",))
        and "central/rules/flobs-alerts.yml" in out_index(out).select(c.FILES)
    }
    assert edited.cache.misses == len(per_file) + 1  # + the promtool-test verdict
    assert _report(edited) == _report(validate(out, inventory=EXAMPLE_INVENTORY, use_cache=False))


def out_index(out: Path) -> Any:
    return validate_module.CheckContext(out, None).index
