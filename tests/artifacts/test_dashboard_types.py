"""Every generated dashboard type-checks against Grafana's own `Dashboard` type.

`@grafana/schema` (npm) is the TypeScript description of the dashboard JSON Grafana
itself uses; `tsc --strict` with the dashboard as an object literal also refuses
properties the type does not have (excess property checks), which is how the
interval-only `auto`, `auto_count` and `auto_min` on query variables were found.

The packages are installed once into a cache outside the repository
(``$FLOBS_TSC_CACHE``, default ``~/.cache/flobs-tsc``) with the pinned versions
below; without npm (or with the registry out of reach) the test skips loudly, and
fails under ``FLOBS_REQUIRE_TOOLS=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import tools_required

GRAFANA_SCHEMA = "13.2.3"
TYPESCRIPT = "5.9.3"

# Grafana's TS enums are string enums while JSON holds their values: compare by value
# (`${T}` of a string enum is the union of its values); everything else stays exact.
LOOSE = (
    "type Loose<T> = T extends string ? `${T}` : T extends (infer U)[] ? Loose<U>[] "
    ": T extends object ? { [K in keyof T]: Loose<T[K]> } : T;\n"
)
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "module": "esnext",
        "moduleResolution": "bundler",
        "target": "es2022",
        "skipLibCheck": True,
        "typeRoots": [],
    },
    "include": ["*.ts"],
}


def _unavailable(reason: str) -> None:
    reason = f"MISSING TOOL: {reason}; the dashboards were not type-checked against @grafana/schema"
    if tools_required():
        pytest.fail(reason + " and FLOBS_REQUIRE_TOOLS=1 is set", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tsc_dir() -> Path:
    cache = (
        Path(os.environ.get("FLOBS_TSC_CACHE", Path.home() / ".cache" / "flobs-tsc"))
        / f"schema-{GRAFANA_SCHEMA}-ts-{TYPESCRIPT}"
    )
    tsc = cache / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        npm = shutil.which("npm")
        if npm is None:
            _unavailable("npm is not on PATH")
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache),
             f"@grafana/schema@{GRAFANA_SCHEMA}", f"typescript@{TYPESCRIPT}"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if proc.returncode != 0 or not tsc.exists():
            _unavailable(f"`npm install` failed (exit {proc.returncode}): {proc.stderr[-500:]}")
    return cache


def test_dashboards_type_check_against_grafana_schema(
    tsc_dir: Path, example_out: Path, tmp_path: Path
) -> None:
    boards = sorted((example_out / "grafana/dashboards").glob("*.json"))
    assert len(boards) == 3
    work = tmp_path / "tsc"
    work.mkdir()
    (work / "node_modules").symlink_to(tsc_dir / "node_modules")
    (work / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    for board in boards:
        (work / f"{board.stem}.ts").write_text(
            "import type { Dashboard } from '@grafana/schema';\n"
            + LOOSE
            + "export const dashboard: Loose<Dashboard> = "
            + board.read_text(encoding="utf-8")
            + ";\n"
        )
    proc = subprocess.run(
        [str(tsc_dir / "node_modules/.bin/tsc"), "-p", "tsconfig.json"],
        cwd=work, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_only_interval_variables_carry_interval_fields(example_out: Path) -> None:
    from flobs.artifacts.dashboards.panels import INTERVAL_ONLY

    for board in sorted((example_out / "grafana/dashboards").glob("*.json")):
        for variable in json.loads(board.read_text())["templating"]["list"]:
            if variable["type"] != "interval":
                assert set(INTERVAL_ONLY).isdisjoint(variable), (board.name, variable["name"])
