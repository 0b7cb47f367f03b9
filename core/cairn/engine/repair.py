"""`cairn verify --repair`: store a good copy of each bad object, found on this machine.

A copy may be in the download cache (a whole file by its digest; a chunk of a large file
is a byte range of it), in a file this machine logged (the stat cache remembers each
logged file's digest and chunks), or in a folder the user names (`--from DIR`: a
checkout, the original data): matched there by the path the version gives the file,
then by size and digest, whatever the file is called now. Every candidate is hashed
before it is sent: nothing unverified is ever stored.

A good copy is written loose over the bad one (a store `put` replaces a key); a packed
object's index row is dropped, so reads find the loose copy; its damaged row goes. Each
repaired object is read back and checked before the report calls it repaired.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import blake3

from ..catalog import access, damaged, packs
from ..foundation.chunking import digest_file
from ..foundation.errors import PermissionDenied
from ..foundation.layout import object_key
from ..foundation.manifest import Entry
from ..foundation.names import Ref
from .statcache import StatCache
from .verify import BadObject, VerifyReport

if TYPE_CHECKING:
    from .needs import Maintained

_NO_COPY = "no good copy in the cache, in files logged from here or in the --from folders"


@dataclass(frozen=True)
class _Place:
    """Bytes [start, start + size) of a local file, which may hold an object."""

    path: str
    start: int
    size: int
    source: str  # said in the report: where the good copy came from


def repair(
    repo: Maintained, report: VerifyReport, folders: Sequence[str], statcache: StatCache
) -> None:
    """Store a good copy of every bad object of `report` that a local copy has; move the
    repaired ones from `report.bad` to `report.repaired`, and say of the others why."""
    finder = _Finder(repo, folders, statcache)
    sent: list[tuple[BadObject, str]] = []
    left: list[BadObject] = []
    for bad in report.bad:
        if not _may_write(repo, bad):
            left.append(replace(bad, note="you may not write to a project that needs it"))
            continue
        found = finder.find(bad)
        if found is None:
            left.append(replace(bad, note=_NO_COPY))
            continue
        data, source = found
        repo.store.put(object_key(bad.digest, namespace=bad.namespace), data)
        sent.append((bad, source))
    if sent:
        repo.store.sync()
        _forget_bad_copies(repo, [b for b, _ in sent])
    for bad, source in sent:
        if _reads_back(repo, bad):
            report.repaired.append((bad.digest, source))
        else:
            note = f"a good copy from {source} was stored, yet it reads back bad"
            left.append(replace(bad, note=note))
    report.bad = left


def _may_write(repo: Maintained, bad: BadObject) -> bool:
    """Whether the caller may write to a project of a version that needs the object."""
    projects = {Ref.parse(ref).project for ref in bad.versions}
    with repo.catalog.read() as conn:
        for project in sorted(projects):
            try:
                access.require(conn, project, "write")
            except PermissionDenied:
                continue
            return True
    return False


def _forget_bad_copies(repo: Maintained, fixed: list[BadObject]) -> None:
    """Point reads at the good loose copies: drop the pack index rows of the repaired
    objects (under the GC guard) and their damaged rows, which allowed that."""
    by_namespace: dict[str, list[str]] = defaultdict(list)
    for bad in fixed:
        by_namespace[bad.namespace].append(bad.digest)
    with repo.catalog.write() as conn:
        repo.catalog.gc_guard(conn, exclusive=False)
        for namespace, digests in sorted(by_namespace.items()):
            packs.forget(conn, namespace, digests)
            damaged.clear(conn, namespace, digests)


def _reads_back(repo: Maintained, bad: BadObject) -> bool:
    try:
        data = repo.objects.get(bad.namespace, bad.digest)
    except FileNotFoundError:
        return False
    return blake3.blake3(data).hexdigest() == bad.digest


class _Finder:
    """Looks for a local copy of an object's bytes, in the order a user would."""

    def __init__(self, repo: Maintained, folders: Sequence[str], statcache: StatCache):
        self.repo = repo
        self.folders = [os.path.abspath(f) for f in folders]
        self.statcache = statcache
        self._by_size: dict[str, dict[int, list[str]]] = {}  # folder -> size -> files
        self._digests: dict[str, str] = {}  # local file -> its digest, hashed once

    def find(self, bad: BadObject) -> tuple[bytes, str] | None:
        """The object's bytes and where they came from, or None."""
        for place in self._places(bad):
            try:
                with open(place.path, "rb") as f:
                    f.seek(place.start)
                    data = f.read(place.size)
            except OSError:
                continue
            if blake3.blake3(data).hexdigest() == bad.digest:
                return data, place.source
        return None

    def _places(self, bad: BadObject) -> Iterator[_Place]:
        ranges = [(need.entry, *_range(need.entry, bad.digest)) for need in bad.needed_by]
        for e, start, size in ranges:
            if e.digest:
                yield _Place(self.repo.cache.path(e.digest), start, size, "the cache")
        for path, at, length in self.statcache.files_with(bad.digest):
            yield _Place(path, at, length, f"{path} (logged from this machine)")
        for e, start, size in ranges:
            for folder in self.folders:
                by_path = os.path.join(folder, *e.path.split("/"))
                if os.path.isfile(by_path):
                    yield _Place(by_path, start, size, by_path)
                for other in self._same_content(folder, e):
                    yield _Place(other, start, size, other)

    def _same_content(self, folder: str, e: Entry) -> Iterator[str]:
        """Files under `folder` of the entry's size whose digest is the entry's."""
        if folder not in self._by_size:
            self._by_size[folder] = _files_by_size(folder)
        for path in self._by_size[folder].get(e.size, []):
            if path not in self._digests:
                try:
                    self._digests[path] = digest_file(path)
                except OSError:
                    self._digests[path] = ""
            if self._digests[path] == e.digest:
                yield path


def _range(e: Entry, digest: str) -> tuple[int, int]:
    """(start, size) of object `digest` in the file of entry `e`."""
    at = 0
    for c in e.chunks:
        if c.digest == digest:
            return at, c.size
        at += c.size
    return 0, e.size


def _files_by_size(folder: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                out[os.stat(path).st_size].append(path)
            except OSError:
                continue
    return out


__all__ = ["repair"]
