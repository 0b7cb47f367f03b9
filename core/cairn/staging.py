"""Staging: storing an Artifact's new bytes under a writer lease, before any commit.

Write order (docs/FORMAT.md): objects -> store sync -> manifest object -> catalog row ->
alias move. The lease taken here keeps GC away from every object the writer relies on
until its catalog transaction has committed (or the lease expires after a crash).

Everything is staged in one store namespace, the one the new version will record
(docs/ACCESS.md): objects a draft takes over from a version stored in another
namespace are copied into it, so a version never needs bytes outside its namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .artifact import Artifact
from .catalog import leases, packs
from .catalog.packs import Member
from .errors import CairnError
from .layout import manifest_key, namespace_prefix, object_key
from .manifest import Entry, Manifest
from .transfer import Scan, Uploader, UploadStats

if TYPE_CHECKING:
    from .repository import Repository


@dataclass
class Staged:
    """New entries of an artifact, stored and leased in `namespace`, not yet committed."""

    lease_id: str
    namespace: str
    entries: list[Entry]
    stats: UploadStats


@contextmanager
def stage(
    repo: Repository, art: Artifact, *, namespace: str, scanned: Scan | None = None
) -> Iterator[Staged]:
    """Store the artifact's files in `namespace` (`scanned`: their scan, if made already);
    the lease lives until the `with` ends."""
    parent = art.parent
    moved = parent is not None and parent.namespace != namespace
    with repo.catalog.write() as conn:
        lease_id = leases.create(
            conn,
            namespace=namespace,
            manifest_digest=parent.digest if parent is not None and not moved else None,
        )
        # a draft of a version stored elsewhere: its objects stay there while copied here
        source_lease = (
            leases.create(conn, namespace=parent.namespace, manifest_digest=parent.digest)
            if parent is not None and moved
            else None
        )
    try:
        uploader = Uploader(
            repo.store,
            namespace=namespace,
            params=repo.chunking,
            protect=lambda digests: _protect(
                repo,
                lease_id,
                {object_key(d, namespace=namespace): d for d in digests},
                packed_in=namespace,
            ),
            statcache=repo._statcache,
            progress=repo.progress,
            concurrency=repo.concurrency,
            packs=_PackIndex(repo, lease_id, namespace),
            objects=repo.objects,
        )
        try:
            entries = uploader.ingest(scanned or art.local_files.items())
            added = list(art.entries.values())
            _take_over(uploader, added, source=None)
            if parent is not None and moved:
                _take_over(uploader, art.base_entries(), source=parent.namespace)
            uploader.flush()
            entries += added
        finally:
            uploader.close()
        yield Staged(lease_id, namespace, entries, uploader.stats)
    finally:
        with repo.catalog.write() as conn:
            leases.drop(conn, lease_id)
            if source_lease is not None:
                leases.drop(conn, source_lease)


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


def _protect(
    repo: Repository, lease_id: str, keys: dict[str, str], *, packed_in: str | None = None
) -> set[str]:
    """Lease the digests of `keys` (key -> digest), then report which exist: in that
    order, under the GC guard. Objects packed in namespace `packed_in` exist too."""
    with repo.catalog.write() as conn:
        repo.catalog.gc_guard(conn, exclusive=False)
        leases.add_objects(conn, lease_id, keys.values())
        found = (
            set(packs.lookup(conn, packed_in, keys.values())) if packed_in is not None else set()
        )
        rest = {k: d for k, d in keys.items() if d not in found}
        return found | {keys[k] for k in repo.store.exists_many(rest)}


@dataclass
class _PackIndex:
    """The uploader's packs, leased and indexed under the writer's lease."""

    repo: Repository
    lease_id: str
    namespace: str

    def lease(self, digests: list[str]) -> None:
        with self.repo.catalog.write() as conn:
            self.repo.catalog.gc_guard(conn, exclusive=False)
            leases.add_objects(conn, self.lease_id, digests)

    def record(self, members: list[Member]) -> None:
        # under the GC guard: gc never sees a stored pack whose index is half written
        with self.repo.catalog.write() as conn:
            self.repo.catalog.gc_guard(conn, exclusive=False)
            packs.record(conn, self.namespace, members)


def write_manifest(repo: Repository, staged: Staged, manifest: Manifest) -> None:
    """Put the manifest object in the staged namespace (so a lost catalog can be rebuilt),
    leased first so GC keeps it until the version row names it."""
    key = manifest_key(manifest.digest, namespace=staged.namespace)
    if not _protect(repo, staged.lease_id, {key: manifest.digest}):
        repo.store.put(key, manifest.to_bytes())
        repo.store.sync()
