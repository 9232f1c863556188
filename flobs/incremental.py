"""Which hosts `flobs generate` need not render again.

A host's files are a function of exactly two objects, the ``HostScope`` and the
``Host`` handed to every host renderer (:data:`flobs.artifacts.HostArtifact`), and
of flobs itself (its code, templates and schemas). The digest of a host hashes a
canonical encoding of those two objects, field by field, with a digest of flobs'
own files: because it is computed from the very objects the renderers receive, a
renderer cannot read an input the digest misses.

``manifest.json`` records, per host, that digest and the files rendered from it. A
host whose digest is unchanged, and whose files on disk still hash to what the
manifest says, is neither rendered nor compared byte by byte; a hand-edited file
fails the hash and its host is rendered again (``--check`` then reports it).
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

import flobs
from flobs import __version__, redact
from flobs.model import Fleet, Host
from flobs.output import OnDisk, OutRoot, path_problem

# Bump when the encoding below changes: every recorded digest then misses once.
ENCODING_VERSION = 2


def canonical(value: object) -> bytes:
    """An unambiguous encoding of a model object: its dataclass ``repr``.

    The model is frozen dataclasses of str, int, float, bool, None and tuples, whose
    generated ``repr`` shows every field, quotes strings and tells 1 from 1.0 and
    "1"; it runs mostly in C, several times faster than walking the fields here.
    tests/test_incremental.py changes every leaf field of a real scope and host and
    requires a different encoding, so a field hidden from ``repr`` fails there.
    """
    return repr(value).encode("utf-8", "surrogatepass")


@cache
def flobs_digest() -> str:
    """flobs itself: version, every file of the package, its templates and schemas, and
    the versions of what renders with it. An edited checkout invalidates every host."""
    h = hashlib.sha256(
        f"encoding {ENCODING_VERSION}\nflobs {__version__}\n"
        f"python {sys.version_info[:2]}\njinja2 {jinja2.__version__}\n".encode()
    )
    roots = [
        ("flobs", Path(flobs.__file__).parent),
        ("templates", Path(str(resources.files("flobs.templates")))),
        ("schemas", Path(str(resources.files("flobs.schemas")))),
    ]
    for name, root in roots:
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            data = path.read_bytes()
            h.update(f"{name}/{path.relative_to(root).as_posix()} {len(data)}\n".encode())
            h.update(data)
    return h.hexdigest()


def host_digests(fleet: Fleet, hosts: Iterable[Host] | None = None) -> dict[str, str]:
    """host name → the digest of everything its files are rendered from."""
    base = hashlib.sha256(flobs_digest().encode())
    base.update(canonical(fleet.host_scope))
    digests = {}
    for host in fleet.hosts if hosts is None else hosts:
        h = base.copy()
        h.update(canonical(host))
        digests[host.name] = h.hexdigest()
    return digests


@dataclass(frozen=True, slots=True)
class HostRecord:
    """What manifest.json says about one host: its digest and the files made from it."""

    digest: str
    files: tuple[str, ...]


def manifest_hosts(records: Mapping[str, HostRecord]) -> dict[str, Any]:
    return {
        name: {"digest": r.digest, "files": list(r.files)} for name, r in sorted(records.items())
    }


def recorded_hosts(manifest: Mapping[str, Any] | None) -> dict[str, HostRecord]:
    """The host records of a manifest (input: a record of the wrong shape is ignored)."""
    section = manifest.get("hosts") if manifest else None
    if not isinstance(section, dict):
        return {}
    out = {}
    for name, entry in section.items():
        if not isinstance(entry, dict):
            continue
        digest, files = entry.get("digest"), entry.get("files")
        if (
            isinstance(digest, str)
            and isinstance(files, list)
            and all(isinstance(f, str) for f in files)
        ):
            out[name] = HostRecord(digest, tuple(files))
    return out


def verify_files(
    root: OutRoot, paths: Iterable[str], listed: Mapping[str, Any]
) -> dict[str, OnDisk] | None:
    """Each file, hashed from disk, matches its manifest entry: their entries; else None.

    This is the guard against hand edits: the file's bytes are hashed every time (size
    and mtime prove nothing).
    """
    found = {}
    with DirReader(root) as reader:
        for path in paths:
            entry = listed.get(path)
            if not isinstance(entry, dict) or path_problem(path) is not None:
                return None
            on_disk = reader.hash(path)
            if on_disk is None or on_disk.sha256 != entry.get("sha256"):
                return None
            found[path] = on_disk
    return found


def hash_file(root: OutRoot, path: str) -> OnDisk | None:
    """sha256 and size of the regular file OUT/path, or None (absent, a link, unreadable)."""
    if path_problem(path) is not None:
        return None
    with DirReader(root) as reader:
        return reader.hash(path)


class DirReader:
    """Reads files inside OUT through directory descriptors opened with O_NOFOLLOW, so
    no symlinked directory leads outside OUT; each directory is opened once, not
    looked up again for every file in it (a host has a dozen files)."""

    def __init__(self, root: OutRoot) -> None:
        self._root = root
        self._fds: dict[str, int] = {}

    def __enter__(self) -> DirReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _dir(self, rel: str) -> int:
        fd = self._fds.get(rel)
        if fd is None:
            if not rel:
                fd = os.open(self._root.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                parent, _, name = rel.rpartition("/")
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(name, flags, dir_fd=self._dir(parent))
            self._fds[rel] = fd
        return fd

    def hash(self, path: str) -> OnDisk | None:
        """``path`` must be a plain relative path (:func:`path_problem` is None)."""
        directory, _, name = path.rpartition("/")
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=self._dir(directory))
        except OSError:
            return None  # absent, a symlink (ELOOP), or below one
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            h = hashlib.sha256()
            size = 0
            while chunk := os.read(fd, max(st.st_size + 1, 1 << 16)):
                h.update(chunk)
                size += len(chunk)
        except OSError:
            return None
        finally:
            os.close(fd)
        return OnDisk(h.hexdigest(), size)


def reusable_hosts(
    root: OutRoot,
    manifest: Mapping[str, Any] | None,
    digests: Mapping[str, str],
) -> tuple[dict[str, HostRecord], dict[str, OnDisk]]:
    """The hosts whose recorded digest is ``digests``' and whose files are intact.

    Returns their records and their files (hashed from disk). Secrets registered in
    this process could change what redaction hides, so then nothing is reused.
    """
    if manifest is None or redact.has_secrets():
        return {}, {}
    listed = manifest["files"]
    records: dict[str, HostRecord] = {}
    kept: dict[str, OnDisk] = {}
    for name, record in recorded_hosts(manifest).items():
        if digests.get(name) != record.digest:
            continue
        prefix = f"hosts/{name}/"
        if not all(path.startswith(prefix) for path in record.files):
            continue
        found = verify_files(root, record.files, listed)
        if found is not None:
            records[name] = record
            kept.update(found)
    return records, kept
