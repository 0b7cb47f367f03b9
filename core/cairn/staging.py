"""Staging: storing an Artifact's new bytes under a writer lease, before any commit.

Write order (docs/FORMAT.md): objects -> store sync -> manifest object -> catalog row ->
alias move. The lease taken here keeps GC away from every object the writer relies on
until its catalog transaction has committed (or the lease expires after a crash).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .artifact import Artifact
from .catalog import leases
from .layout import manifest_key, object_key
from .manifest import Entry, Manifest
from .transfer import Scan, Uploader, UploadStats

if TYPE_CHECKING:
    from .repository import Repository


@dataclass
class Staged:
    """New entries of an artifact, stored and leased, not yet committed."""

    lease_id: str
    entries: list[Entry]
    stats: UploadStats


@contextmanager
def stage(repo: Repository, art: Artifact, scanned: Scan | None = None) -> Iterator[Staged]:
    """Store the artifact's files (`scanned`: their scan, if made already); the lease
    lives until the `with` block ends."""
    base = art.parent.digest if art.parent is not None else None
    with repo.catalog.write() as conn:
        lease_id = leases.create(conn, manifest_digest=base)
    try:
        uploader = Uploader(
            repo.store,
            params=repo.chunking,
            protect=lambda digests: _protect(repo, lease_id, digests),
            statcache=repo._statcache,
            progress=repo.progress,
            concurrency=repo.concurrency,
        )
        try:
            entries = uploader.ingest(scanned or art.local_files.items())
            entries += list(art.entries.values())
        finally:
            uploader.close()
        yield Staged(lease_id, entries, uploader.stats)
    finally:
        with repo.catalog.write() as conn:
            leases.drop(conn, lease_id)


def _protect(repo: Repository, lease_id: str, digests: list[str]) -> set[str]:
    """Lease `digests`, then report which exist: in that order, under the GC guard."""
    with repo.catalog.write() as conn:
        repo.catalog.gc_guard(conn, exclusive=False)
        leases.add_objects(conn, lease_id, digests)
        keys = {object_key(d): d for d in digests}
        return {keys[k] for k in repo.store.exists_many(keys)}


def write_manifest(repo: Repository, manifest: Manifest) -> None:
    """Put the manifest object in the store (so a lost catalog can be rebuilt)."""
    key = manifest_key(manifest.digest)
    if not repo.store.exists_many([key]):
        repo.store.put(key, manifest.to_bytes())
        repo.store.sync()
