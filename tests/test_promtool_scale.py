"""promtool 2.42 and 3.x accept a 1,000-host output generated for their version.

The real promtools judge every Prometheus file (configs, host and central rules, the
alert unit tests) through validate's promtool checks under `--tools require`, which
route each file to the promtool of the version its header names. A file written for
the wrong version would fail here: 3.x files carry keys 2.x refuses
(`fallback_scrape_protocol`, `storage.tsdb.retention`), and 2.x files are checked by 2.x.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from benchmarks import fleet as bench_fleet
from flobs import yamlio
from flobs.checks import CheckContext
from flobs.checks.tools import PromtoolConfig, PromtoolRules, PromtoolTests
from flobs.generate import generate
from flobs.validate import check_files
from tests.conftest import require_major

pytestmark = pytest.mark.tools

HOSTS = 1000


@pytest.fixture(scope="module")
def thousand_hosts() -> dict[str, object]:
    return bench_fleet.inventory(HOSTS)


@pytest.mark.parametrize("version", ["2.42", "3.13"])
def test_promtool_of_the_version_accepts_1000_hosts(
    thousand_hosts: dict[str, object], tmp_path: Path, version: str
) -> None:
    require_major("promtool", int(version.split(".")[0]))
    doc = copy.deepcopy(thousand_hosts)
    defaults = doc.setdefault("defaults", {})
    assert isinstance(defaults, dict)
    defaults["local_prometheus"] = {**defaults.get("local_prometheus", {}), "version": version}
    central = doc["central"]
    assert isinstance(central, dict)
    central["prometheus"]["version"] = version
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yamlio.dump(doc))
    out = tmp_path / "out"
    generate(inventory, out)
    header = (out / "central" / "prometheus.yml").read_text().splitlines()[1]
    assert header == f"# For Prometheus {version}."

    ctx = CheckContext(out=out, fleet=None, tools="require")
    checks = (PromtoolConfig, PromtoolRules, PromtoolTests)
    problems = [p.render() for check in checks for p in check().check(ctx)]
    assert problems == []
    ran = {check.ID: len(check_files(check, ctx)) for check in checks}
    # Every host's config and rules file, the centre's config, two rules files, one test.
    assert ran == {
        "promtool-config": HOSTS + 1,
        "promtool-rules": HOSTS + 2,
        "promtool-test": 1,
    }
    # The other major's promtool was not used as a stand-in (a note says when it is).
    assert ctx.notes == []
