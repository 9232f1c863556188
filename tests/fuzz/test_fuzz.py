"""Fuzz target: mutated inventories through the loader, then generate → validate.

Seeds are the committed corpus in ``tests/fuzz/corpus/`` (every case inventory is a
good seed too); each input is a seed with one to four text mutations (YAML tokens,
anchors, aliases, merge keys, tags, tabs, odd numbers and durations, spliced lines).
Outcomes allowed: the inventory loads, or it is refused with located problems
(exit 2); a loaded one generates, and its tree validates to findings or none. Any
other exception — a traceback, exit 3 — is counted and fails the run.

Bounded: ``FLOBS_FUZZ_SECONDS`` (default 20) of work, deterministic for a given
``FLOBS_FUZZ_SEED``; the summary line (inputs, loaded, refused, validated, internal
errors) is printed and written to ``$FLOBS_FUZZ_REPORT`` when that is set. Save an
input that fails as a new corpus file, so it is replayed on every run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import traceback
from pathlib import Path

from flobs.errors import FlobsError, InputError
from flobs.generate import generate
from flobs.inventory import load_fleet_text
from flobs.validate import validate

CORPUS = Path(__file__).parent / "corpus"
CASES = Path(__file__).parent.parent / "cases"

TOKENS = [
    "&a ", "*a", "<<: *a", "<<: [*a, *a]", "!!binary ", "!!str ", "!!int ", "!foo ", "\t",
    "- ", ": ", "{", "}", "[", "]", ",", "#", "'", '"', "\\", "|", ">", "~", "null",
    ".nan", ".inf", "-.inf", "1e9", "-1", "0", "99999", "99999999999y", "0s", "7d", "8d",
    "0.0.0.0:9090", "127.0.0.1:70000", "[::1]:9100", "http://", "https://u:p@x/",
    "scrape_interval: ", "vars: ", "labels: ", "groups: ", "central: ", "hosts: ",
    "mode: remote_write", "single_host: true", "agent: alloy", "enabled: false",
    "providers: [cloud-hypervisor]", "logs_pipeline: true", "\u2028", "\ufeff", "☃",
    "{{ x }}", "${HOME}", "$", "__name__", "job", "host", "cluster",
]  # fmt: skip


def _seeds() -> list[str]:
    paths = sorted(CORPUS.glob("*.yaml")) + sorted(CASES.glob("*/inventory.yaml"))
    return [p.read_text(encoding="utf-8") for p in paths]


def _mutate(rng: random.Random, text: str, seeds: list[str]) -> str:
    for _ in range(rng.randint(1, 4)):
        lines = text.split("\n")
        choice = rng.randrange(6)
        if choice == 0:  # insert a token anywhere
            at = rng.randint(0, len(text))
            text = text[:at] + rng.choice(TOKENS) + text[at:]
        elif choice == 1 and len(text) > 1:  # delete a span
            at = rng.randrange(len(text))
            text = text[:at] + text[at + rng.randint(1, 12) :]
        elif choice == 2 and lines:  # duplicate a line
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif choice == 3 and len(lines) > 1:  # delete a line
            del lines[rng.randrange(len(lines))]
            text = "\n".join(lines)
        elif choice == 4:  # splice a line from another seed
            other = rng.choice(seeds).split("\n")
            lines.insert(rng.randint(0, len(lines)), rng.choice(other))
            text = "\n".join(lines)
        else:  # replace a scalar after a colon with a token
            i = rng.randrange(len(lines))
            head, sep, _ = lines[i].partition(": ")
            if sep:
                lines[i] = head + sep + rng.choice(TOKENS).strip()
                text = "\n".join(lines)
    return text


def _loads(text: str) -> bool:
    try:
        load_fleet_text(text.encode(), "seed.yaml")
    except InputError:
        return False
    return True


def test_fuzz_inventory_generate_validate(tmp_path: Path) -> None:
    budget = float(os.environ.get("FLOBS_FUZZ_SECONDS", "20"))
    rng = random.Random(int(os.environ.get("FLOBS_FUZZ_SEED", "17")))
    seeds = _seeds()
    # Mutants of inventories that load reach generate and validate; most case seeds
    # are refused on purpose, so the loadable ones are picked three times in four.
    loadable = [s for s in seeds if _loads(s)]
    counts = {"inputs": 0, "loaded": 0, "refused": 0, "validated": 0, "internal_errors": 0}
    failures: list[str] = []
    deadline = time.monotonic() + budget
    # The seeds themselves first, then mutants until the budget is spent.
    queue = list(seeds)
    while time.monotonic() < deadline:
        if queue:
            text = queue.pop()
        else:
            seed = rng.choice(loadable if rng.random() < 0.75 else seeds)
            text = _mutate(rng, seed, seeds)
        counts["inputs"] += 1
        try:
            try:
                load_fleet_text(text.encode("utf-8", "surrogatepass"), "fuzz.yaml")
            except InputError as err:
                counts["refused"] += 1
                if not err.problems or any(p.file != "fuzz.yaml" for p in err.problems):
                    failures.append(f"refused without located problems: {err.problems}\n{text}")
                continue
            counts["loaded"] += 1
            # Generate → validate only for every fourth loaded input: they cost ~100x more.
            if counts["loaded"] % 4 != 1:
                continue
            inv = tmp_path / "fuzz.yaml"
            inv.write_text(text, encoding="utf-8", errors="surrogatepass")
            out = tmp_path / "out"
            shutil.rmtree(out, ignore_errors=True)
            generate(inv, out)
            validate(out, inventory=inv, tools="off")
            counts["validated"] += 1
        except FlobsError as err:
            if err.exit_code == 2:
                counts["refused"] += 1
                continue
            counts["internal_errors"] += 1
            failures.append(f"{type(err).__name__} (exit {err.exit_code}): {err.message}\n{text}")
        except Exception:  # every other exception is a traceback a user would see
            counts["internal_errors"] += 1
            failures.append(traceback.format_exc() + "\n" + text)
    summary = json.dumps(counts)
    print(f"fuzz: {summary} in {budget:g}s")
    report = os.environ.get("FLOBS_FUZZ_REPORT")
    if report:
        Path(report).write_text(summary + "\n", encoding="utf-8")
    assert counts["inputs"] >= len(seeds)
    assert failures == [], f"{len(failures)} internal errors; the first:\n{failures[0]}"
