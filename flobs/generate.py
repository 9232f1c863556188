"""`flobs generate`: inventory → fleet → every artifact → an atomic, deterministic tree."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flobs.artifacts import fleet_artifacts, host_artifacts
from flobs.artifacts.ansible import placed_records
from flobs.artifacts.extensions import manifest_extra
from flobs.errors import InputError, UsageError
from flobs.incremental import (
    HostRecord,
    hash_file,
    host_digests,
    manifest_hosts,
    recorded_hosts,
    reusable_hosts,
    verify_files,
)
from flobs.inventory import load_fleet
from flobs.model import Fleet, Host, HostScope
from flobs.output import (
    LOCK_WAIT_SECONDS,
    MANIFEST,
    ChangeSet,
    OnDisk,
    OutRoot,
    Tree,
    build_manifest,
    load_manifest,
    out_lock,
    plan,
    recover,
    write_tree,
)
from flobs.problems import Problem
from flobs.redact import redact_bytes

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class GenerateResult:
    fleet: Fleet
    changes: ChangeSet
    tree: Tree  # what was rendered this run (with the manifest)
    warnings: tuple[Problem, ...]
    written: bool  # False with --check
    # Files left as they are on disk: unchanged hosts (and, with --host, the others).
    kept: Mapping[str, OnDisk] = field(default_factory=dict)
    rendered_hosts: tuple[str, ...] = ()


# Forking and shipping bodies back costs more than rendering a small fleet.
POOL_MIN_HOSTS = 400
HOSTS_PER_TASK = 50


def default_workers(hosts: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, hosts // (POOL_MIN_HOSTS // 2)))


def render_host(scope: HostScope, host: Host) -> Tree:
    """One host's files: every host renderer, given only the scope and the host."""
    files: Tree = {}
    for produce in host_artifacts():
        files.update(produce(scope, host))
    # What the playbook places on this host: a function of this host's paths alone.
    files.update(placed_records(files))
    # The redaction layer's choke point for generated files (before hashing).
    return {path: redact_bytes(data) for path, data in files.items()}


def render_hosts(
    fleet: Fleet,
    hosts: Sequence[Host],
    *,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, Tree]:
    """host name → its files, rendered in ``workers`` processes (default: by size).

    Hosts are rendered independently from (scope, host), so the result is the same
    in any number of processes; it is assembled in inventory order either way.
    """
    workers = default_workers(len(hosts)) if workers is None else workers
    scope = fleet.host_scope
    out: dict[str, Tree] = {}
    if workers <= 1 or len(hosts) <= 1:
        for n, host in enumerate(hosts, 1):
            out[host.name] = render_host(scope, host)
            if progress and (n % 100 == 0 or n == len(hosts)):
                progress(n, len(hosts))
        return out
    global _pool_work
    chunks = [hosts[i : i + HOSTS_PER_TASK] for i in range(0, len(hosts), HOSTS_PER_TASK)]
    # fork: workers inherit the fleet instead of unpickling it; they only send back
    # the bodies the parent must write.
    _pool_work = (scope, chunks)
    try:
        with multiprocessing.get_context("fork").Pool(workers, _ignore_sigint) as pool:
            done = 0
            for chunk, rendered in zip(
                chunks, pool.imap(_render_chunk, range(len(chunks))), strict=True
            ):
                out.update(zip((h.name for h in chunk), rendered, strict=True))
                done += len(chunk)
                if progress:
                    progress(done, len(hosts))
    finally:
        _pool_work = None
    return out


_pool_work: tuple[HostScope, list[Sequence[Host]]] | None = None


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the parent reports it and ends the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _render_chunk(index: int) -> list[Tree]:
    assert _pool_work is not None, "set before the pool forks"
    scope, chunks = _pool_work
    return [render_host(scope, host) for host in chunks[index]]


def render_fleet(fleet: Fleet) -> Tree:
    tree: Tree = {}
    for produce_fleet in fleet_artifacts():
        tree.update(produce_fleet(fleet))
    if any(path.startswith("hosts/") for path in tree):
        # A host's directory is its renderers' alone (its placed.json lists them), so
        # incremental generate can keep or replace it as a whole.
        raise ValueError("a fleet artifact wrote into hosts/: render it per host instead")
    tree.update(placed_records(tree))
    return {path: redact_bytes(data) for path, data in tree.items()}


def render_tree(
    fleet: Fleet,
    *,
    only_hosts: set[str] | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> Tree:
    """Every generated file, in memory. Hosts outside ``only_hosts`` are skipped."""
    hosts = [h for h in fleet.hosts if only_hosts is None or h.name in only_hosts]
    tree: Tree = {}
    for files in render_hosts(fleet, hosts, progress=progress, workers=workers).values():
        tree.update(files)
    tree.update(render_fleet(fleet))
    return tree


def _other_hosts(
    root: OutRoot, manifest: dict[str, Any] | None, selected: set[str]
) -> tuple[dict[str, HostRecord], dict[str, OnDisk]]:
    """With --host, other hosts' files stay as they are on disk.

    The manifest says which files those are; it is input, so each path is checked
    (:func:`load_manifest`, :meth:`OutRoot.target`) and only regular files are kept.
    A host keeps its record only when its files are the ones recorded.
    """
    if manifest is None:
        return {}, {}
    kept: dict[str, OnDisk] = {}
    for path in manifest["files"]:
        parts = path.split("/")
        if len(parts) > 2 and parts[0] == "hosts" and parts[1] not in selected:
            on_disk = hash_file(root, path)
            if on_disk is not None:  # else gone, or a symlink: regenerated or dropped
                kept[path] = on_disk
    records = {
        name: record
        for name, record in recorded_hosts(manifest).items()
        if name not in selected and verify_files(root, record.files, manifest["files"]) is not None
    }
    return records, kept


def generate(
    inventory: Path,
    out: Path,
    *,
    check: bool = False,
    hosts: list[str] | None = None,
    progress: Progress | None = None,
    write_progress: Callable[[int], None] | None = None,
    inventory_display: str | None = None,
    strict: bool = False,
    out_display: str | None = None,
    lock_wait: float = LOCK_WAIT_SECONDS,
    full: bool = False,
    workers: int | None = None,
) -> GenerateResult:
    """Generate OUT from the inventory.

    Hosts whose digest (:mod:`flobs.incremental`) is the one manifest.json records,
    and whose files still hash to what it lists, are not rendered again; ``full``
    renders every host whatever OUT holds.
    """
    loaded = load_fleet(inventory, display_name=inventory_display)
    if strict and loaded.warnings:
        raise InputError(
            loaded.warnings,
            f"{len(loaded.warnings)} warning{'s' if len(loaded.warnings) != 1 else ''} "
            "in the input, errors with --strict",
        )
    fleet = loaded.fleet
    selected: set[str] | None = None
    if hosts:
        known = {h.name for h in fleet.hosts}
        unknown = sorted(set(hosts) - known)
        if unknown:
            raise UsageError(
                f"--host names unknown host(s): {', '.join(unknown)}",
                hint="host names come from the inventory's `hosts:` list",
            )
        selected = set(hosts)
    root = OutRoot(out, display=out_display)
    digests = host_digests(fleet)

    def build() -> tuple[Tree, dict[str, OnDisk], list[Host]]:
        manifest = load_manifest(root) if os.path.isdir(root.path) else None
        if selected is not None:
            records, kept = _other_hosts(root, manifest, selected)
            todo = [h for h in fleet.hosts if h.name in selected]
        else:
            records, kept = ({}, {}) if full else reusable_hosts(root, manifest, digests)
            todo = [h for h in fleet.hosts if h.name not in records]
        tree: Tree = {}
        for name, files in render_hosts(fleet, todo, progress=progress, workers=workers).items():
            records[name] = HostRecord(digests[name], tuple(sorted(files)))
            tree.update(files)
        tree.update(render_fleet(fleet))
        kept = {path: k for path, k in kept.items() if path not in tree}
        tree[MANIFEST] = build_manifest(
            tree,
            inventory_name=fleet.source_name,
            inventory_sha256=fleet.source_sha256,
            extra={**manifest_extra(fleet), "hosts": manifest_hosts(records)},
            kept=kept,
        )
        return tree, kept, todo

    if check:
        tree, kept, todo = build()
        changes = plan(out, tree, display=out_display, kept=kept)
        return GenerateResult(
            fleet, changes, tree, loaded.warnings, False, kept, tuple(h.name for h in todo)
        )
    # Hashing what is kept and writing the tree is one step under the lock.
    with out_lock(root, wait=lock_wait):
        recover(root)
        tree, kept, todo = build()
        changes = write_tree(
            out,
            tree,
            progress=write_progress,
            lock_wait=lock_wait,
            display=out_display,
            kept=kept,
        )
    return GenerateResult(
        fleet, changes, tree, loaded.warnings, True, kept, tuple(h.name for h in todo)
    )


def iter_check_report(result: GenerateResult, out: Path) -> Iterator[str]:
    c = result.changes
    if c.interrupted:
        yield f"interrupted: {c.interrupted}\n"
    for path in c.added:
        yield f"added:   {path}\n"
    for path in c.removed:
        yield f"removed: {path}\n"
    for path in c.changed:
        yield f"changed: {path}\n"
    yield from c.diff(out, result.tree)
