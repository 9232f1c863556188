"""`flobs generate`: inventory → fleet → every artifact → an atomic, deterministic tree."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flobs.artifacts import fleet_artifacts, host_artifacts
from flobs.artifacts.ansible import placed_records
from flobs.artifacts.extensions import manifest_extra
from flobs.errors import InputError, UsageError
from flobs.inventory import load_fleet
from flobs.model import Fleet
from flobs.output import (
    LOCK_WAIT_SECONDS,
    MANIFEST,
    ChangeSet,
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
    tree: Tree
    warnings: tuple[Problem, ...]
    written: bool  # False with --check


def render_tree(
    fleet: Fleet, *, only_hosts: set[str] | None = None, progress: Progress | None = None
) -> Tree:
    """Every generated file, in memory. Hosts outside ``only_hosts`` are skipped."""
    tree: Tree = {}
    hosts = [h for h in fleet.hosts if only_hosts is None or h.name in only_hosts]
    producers = host_artifacts()
    for n, host in enumerate(hosts, 1):
        for produce in producers:
            tree.update(produce(fleet, host))
        if progress and (n % 100 == 0 or n == len(hosts)):
            progress(n, len(hosts))
    for produce_fleet in fleet_artifacts():
        tree.update(produce_fleet(fleet))
    # What the playbook places on each machine, from every file the others produced.
    tree.update(placed_records(tree))
    # The redaction layer's choke point for generated files (before hashing).
    return {path: redact_bytes(data) for path, data in tree.items()}


def _keep_other_hosts(root: OutRoot, tree: Tree, selected: set[str]) -> Tree:
    """With --host, other hosts' files stay as they are on disk.

    The manifest says which files those are; it is input, so each path is checked
    (:func:`load_manifest`, :meth:`OutRoot.target`) and only regular files are kept.
    """
    manifest = load_manifest(root) or {"files": {}}
    kept: Tree = {}
    for path in manifest["files"]:
        parts = path.split("/")
        if len(parts) > 2 and parts[0] == "hosts" and parts[1] not in selected:
            try:
                with open(root.target(path), "rb", opener=_no_follow) as fh:
                    if stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                        kept[path] = fh.read()
            except OSError:
                continue  # gone, or a symlink: regenerated or dropped
    return {**kept, **tree}


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)


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
) -> GenerateResult:
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
    tree = render_tree(fleet, only_hosts=selected, progress=progress)
    root = OutRoot(out, display=out_display)

    def finish(tree: Tree) -> Tree:
        if selected is not None:
            tree = _keep_other_hosts(root, tree, selected)
        tree[MANIFEST] = build_manifest(
            tree,
            inventory_name=fleet.source_name,
            inventory_sha256=fleet.source_sha256,
            extra=manifest_extra(fleet),
        )
        return tree

    if check:
        tree = finish(tree)
        changes = plan(out, tree, display=out_display)
        return GenerateResult(fleet, changes, tree, loaded.warnings, written=False)
    # Reading other hosts' files and writing the tree is one step under the lock.
    with out_lock(root, wait=lock_wait):
        recover(root)
        tree = finish(tree)
        changes = write_tree(
            out, tree, progress=write_progress, lock_wait=lock_wait, display=out_display
        )
    return GenerateResult(fleet, changes, tree, loaded.warnings, written=True)


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
