"""Staging: storing an Artifact's new bytes under a writer lease, before any commit.

Write order (docs/FORMAT.md): objects -> store sync -> manifest object -> catalog row ->
alias move. The lease taken here keeps GC away from every object the writer relies on
until its catalog transaction has committed (or the lease expires after a crash).

Everything is staged in one store namespace, the one the new version will record
(docs/ACCESS.md): objects a draft takes over from a version stored in another
namespace are copied into it, so a version never needs bytes outside its namespace.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from ..catalog import Catalog, damaged, leases, packs
from ..catalog.packs import Member
from ..foundation.chunking import ChunkingParams
from ..foundation.errors import CairnError
from ..foundation.layout import manifest_key, namespace_prefix
from ..foundation.manifest import Entry, Manifest
from ..storage import Store
from .artifact import Artifact
from .events import Listeners
from .objects import Objects, presence
from .progress import Progress
from .scan import Scan, batches, scan
from .statcache import StatCache
from .transfer import Uploader, UploadStats


class Destination(Protocol):
    """What staging writes into and with: a catalog and a store, how files are chunked,
    what this machine remembers of them, and how to report and pace the sending
    (`Repository` is one; staging needs nothing else of it)."""

    chunking: ChunkingParams
    statcache: StatCache
    progress: Progress
    concurrency: int | None

    @property
    def catalog(self) -> Catalog: ...

    @property
    def store(self) -> Store: ...

    @property
    def objects(self) -> Objects: ...


class Writers(Destination, Protocol):
    """What a log, and the many writers of one distributed version, store and commit
    through: staging's destination, and who hears of the commit (`Repository` is one)."""

    listeners: Listeners


@dataclass(frozen=True)
class Written:
    """A version a log, an upsert or a finish wrote to: the API layer hands it out."""

    version_id: int
    #: what this call stored (None: a retried finish that stored nothing)
    stats: UploadStats | None
    #: True: a new version was committed; False: an identical one stands for it;
    #: None: nothing was committed (an upsert), or a retried finish
    created: bool | None
    #: the version's row and aliases when the transaction that found it read them (an
    #: unchanged re-log): the API builds its handle without reading them again
    found: tuple[Any, list[str]] | None = None


#: manifest shards put in one batch
_PUT_BATCH = 32
#: manifest documents leased and checked in one transaction
_LEASE_BATCH = 256


@dataclass
class Staged:
    """New entries of an artifact, stored and leased in `namespace`, not yet committed."""

    lease_id: str
    namespace: str
    entries: list[Entry]
    stats: UploadStats
    #: the lease holds the draft's parent in this namespace: the manifest shards a draft
    #: takes over from it need not be stored again
    holds_parent: bool = False


@contextmanager
def stage(
    repo: Destination, art: Artifact, *, namespace: str, scanned: Scan | None = None
) -> Iterator[Staged]:
    """Store the artifact's files in `namespace` (`scanned`: their scan, if made already);
    the lease lives until the `with` ends. Its entries come as one list: for a part of a
    distributed version or a write through cairn://; a log streams them (`writer`)."""
    with writer(repo, art, namespace=namespace) as w:
        files = scanned or scan(art.files(), w.uploader.statcache)
        entries = list(w.uploader.stream([files], files.bytes))
        staged = w.finish()
        staged.entries = entries + staged.entries
        yield staged


@contextmanager
def writer(repo: Destination, art: Artifact, *, namespace: str) -> Iterator[Writer]:
    """A writer lease in `namespace` (and one on a draft's parent stored elsewhere) with
    an uploader under it; the leases live until the `with` ends."""
    parent = art.parent
    moved = parent is not None and parent.namespace != namespace
    with ExitStack() as held:
        if parent is not None and moved:
            # a draft of a version stored elsewhere: its objects stay there while copied here
            held.enter_context(_leased(repo, parent.namespace, parent.digest))
        holding = parent.digest if parent is not None and not moved else None
        out = held.enter_context(sending(repo, namespace=namespace, holding=holding))
        yield Writer(art, out.lease_id, namespace, out.uploader, out.index, moved)


@dataclass
class Sender:
    """What `sending` holds: a lease in `namespace`, and an uploader under it for objects
    that come as bytes (`Uploader.held`, then `Uploader.send`: small ones go as packs)."""

    lease_id: str
    namespace: str
    uploader: Uploader
    index: _PackIndex

    def finish(self) -> Staged:
        """Wait until every object sent is durable (and clear what they repaired)."""
        self.uploader.flush()
        self.index.repaired(self.uploader.stored)
        return Staged(self.lease_id, self.namespace, [], self.uploader.stats)


@contextmanager
def sending(repo: Destination, *, namespace: str, holding: str | None = None) -> Iterator[Sender]:
    """A writer lease in `namespace` (also holding the version whose manifest digest is
    `holding`, a draft's parent) with an uploader under it: a log's files, or an export's
    ready-made objects; the lease lives until the `with` ends."""
    with _leased(repo, namespace, holding) as lease_id:
        index = _PackIndex(repo, lease_id, namespace)
        uploader = _uploader(repo, index, namespace)
        try:
            yield Sender(lease_id, namespace, uploader, index)
        finally:
            uploader.close()


@contextmanager
def _leased(repo: Destination, namespace: str, manifest_digest: str | None) -> Iterator[str]:
    with repo.catalog.write() as conn:
        lease_id = leases.create(conn, namespace=namespace, manifest_digest=manifest_digest)
    try:
        yield lease_id
    finally:
        with repo.catalog.write() as conn:
            leases.drop(conn, lease_id)


def _uploader(repo: Destination, index: _PackIndex, namespace: str) -> Uploader:
    return Uploader(
        repo.store,
        namespace=namespace,
        params=repo.chunking,
        protect=index.protect,
        statcache=repo.statcache,
        progress=repo.progress,
        concurrency=repo.concurrency,
        packs=index,
        objects=repo.objects,
        watch=index.repair,
    )


@dataclass
class Writer:
    """What `writer` holds: the lease, and the uploader storing the artifact's files."""

    art: Artifact
    lease_id: str
    namespace: str
    uploader: Uploader
    index: _PackIndex
    #: a draft of a version stored in another namespace, whose objects are copied here
    moved: bool

    def files(self) -> Iterator[Entry]:
        """The entries of the artifact's local files, in path order, as they are stored:
        scanned and sent a batch at a time (cairn.scan)."""
        scans = batches(self.art.files(), self.uploader.statcache)
        # the bytes to expect cost a walk of the folders: only for a bar someone watches
        total = self.art.expected_bytes() if self.uploader.reports_progress else 0
        return self.uploader.stream(scans, total)

    def finish(self) -> Staged:
        """Lease the ready-made entries' objects (and copy a moved draft's), wait until
        every object is durable; the staged result holds the ready-made entries."""
        art, uploader = self.art, self.uploader
        added = list(art.entries.values())
        _take_over(uploader, added, source=None)
        if art.parent is not None and self.moved:
            _take_over(uploader, art.base_entries(), source=art.parent.namespace)
        uploader.flush()
        self.index.repaired(uploader.stored)
        held = art.parent is not None and not self.moved
        return Staged(self.lease_id, self.namespace, added, uploader.stats, holds_parent=held)


def _take_over(uploader: Uploader, entries: list[Entry], *, source: str | None) -> None:
    """Lease the stored objects of entries not uploaded by this log, copying them from
    namespace `source` if they are not in the uploader's namespace yet."""
    owners = {d: e for e in entries for d in e.objects()}
    lost = uploader.copy_objects(owners, source=source)
    if lost:
        e = owners[min(lost)]
        where = namespace_prefix(uploader.namespace) or "the shared namespace"
        raise CairnError(
            f"{e.path}: its content is not stored in {where}, where this version goes; "
            "add the file itself (or log a draft of the version holding it)"
        )


def _protect(repo: Destination, lease_id: str, keys: dict[str, str]) -> set[str]:
    """Lease the digests of `keys` (key -> digest), then report which keys exist: in
    that order, under the GC guard."""
    with repo.catalog.write() as conn:
        repo.catalog.gc_guard(conn, exclusive=False)
        leases.add_objects(conn, lease_id, keys.values())
        return {keys[k] for k in repo.store.exists_many(keys)}


@dataclass
class _PackIndex:
    """The writer's objects, leased under its lease before their existence is checked,
    its packs indexed, and what it repairs: objects the catalog knew but the store did
    not hold intact, of which it stores a good copy."""

    repo: Destination
    lease_id: str
    namespace: str
    #: digests this writer found absent though known (objects.Presence.repair) ...
    repair: set[str] = field(default_factory=set)
    #: ... of which these have a pack index row to move off the bad copy
    indexed: set[str] = field(default_factory=set)
    #: ... and these were re-sent in a new pack, whose index rows replaced the old ones
    repacked: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def protect(self, digests: list[str]) -> set[str]:
        """Lease `digests`, then report which the namespace holds intact: in that order,
        under the GC guard, so gc cannot delete one between the check and the commit."""
        with self.repo.catalog.write() as conn:
            self.repo.catalog.gc_guard(conn, exclusive=False)
            leases.add_objects(conn, self.lease_id, digests)
            found = presence(self.repo.store, conn, self.namespace, digests)
            if found.lost:  # their pack is gone: say so, as verify would
                damaged.record(conn, self.namespace, dict.fromkeys(found.lost, damaged.MISSING))
        with self._lock:
            self.repair |= found.repair
            self.indexed |= found.indexed
        return found.present

    def lease(self, digests: list[str]) -> None:
        with self.repo.catalog.write() as conn:
            self.repo.catalog.gc_guard(conn, exclusive=False)
            leases.add_objects(conn, self.lease_id, digests)

    def record(self, members: list[Member]) -> None:
        # under the GC guard: gc never sees a stored pack whose index is half written
        with self._lock:
            moved = {m.digest for m in members} & self.indexed
        with self.repo.catalog.write() as conn:
            self.repo.catalog.gc_guard(conn, exclusive=False)
            if moved:  # a repaired object: its good copy is here now, not in the bad pack
                packs.forget(conn, self.namespace, moved)
            packs.record(conn, self.namespace, members)
        with self._lock:
            self.repacked |= moved

    def repaired(self, stored: set[str]) -> None:
        """The good copies of objects under repair are durably stored (`stored`: what the
        uploader sent): drop their damaged rows, and the index rows of those that were
        packed and now are loose."""
        fixed = self.repair & stored
        if not fixed:
            return
        with self.repo.catalog.write() as conn:
            self.repo.catalog.gc_guard(conn, exclusive=False)
            packs.forget(conn, self.namespace, (fixed & self.indexed) - self.repacked)
            packs.moved(conn, self.namespace)  # a repaired object may be elsewhere now
            damaged.clear(conn, self.namespace, fixed)


def write_manifest(repo: Destination, staged: Staged, manifest: Manifest) -> None:
    """Put the manifest's documents in the staged namespace (so a lost catalog can be
    rebuilt): shards, then the root (docs/FORMAT.md, write order), each leased first so
    GC keeps it until the version row names it. The shards a draft took over from its
    parent are not written when the parent is in this namespace: its version holds them
    there, and the staging lease holds the parent. The documents are streamed, a batch
    at a time (a million-file manifest's shards are never all in memory)."""
    wrote = False
    top = manifest_key(manifest.digest, namespace=staged.namespace)  # the root: it comes last
    docs = manifest.documents(new_only=staged.holds_parent)
    while batch := list(islice(docs, _LEASE_BATCH)):
        keyed = {manifest_key(d.digest, namespace=staged.namespace): d for d in batch}
        present = _protect(repo, staged.lease_id, {k: d.digest for k, d in keyed.items()})
        missing = [k for k, d in keyed.items() if d.digest not in present]
        shards = [k for k in missing if k != top]
        root = [k for k in missing if k == top]
        for i in range(0, len(shards), _PUT_BATCH):  # the shards, a batch in flight at a time
            part = shards[i : i + _PUT_BATCH]
            repo.store.put_many({k: keyed[k].text() for k in part}).raise_first()
        for key in root:  # the root last: a stored root's shards are all stored
            repo.store.put(key, keyed[key].text())
        wrote = wrote or bool(missing)
    if wrote and repo.catalog.journal is None:
        repo.store.sync()
    # else the commit's store-log record is written and synced before the commit, and
    # that one sync makes the manifest durable too (docs/FORMAT.md, write order)
