"""Garbage collection: delete store objects no live version, part or writer needs.

Runs inside one write transaction holding the exclusive GC guard: writers record what
they rely on under the shared guard before they check existence, so nothing a writer
is about to commit can be deleted here (DESIGN invariant 8).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from .catalog import leases, parts, records
from .catalog.schema import manifests, versions
from .layout import OBJECTS, digest_of_object_key, manifest_key

if TYPE_CHECKING:
    from .repository import Repository

# objects younger than this are left alone: a writer on a clock-skewed machine may be
# between its upload and its lease renewal
_GRACE_SECONDS = 0.0


@dataclass(frozen=True)
class GCReport:
    objects_deleted: int
    bytes_freed: int
    objects_kept: int
    manifests_deleted: int
    dry_run: bool

    def __str__(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (
            f"{verb} {self.objects_deleted} objects ({self.bytes_freed} bytes), "
            f"kept {self.objects_kept}; {self.manifests_deleted} manifests unreferenced"
        )


def collect(repo: Repository, *, dry_run: bool = False) -> GCReport:
    started = time.time()
    with repo.catalog.write() as conn:
        repo.catalog.gc_guard(conn, exclusive=True)
        leased_objects, leased_manifests = leases.live(conn)
        referenced = {
            r[0]
            for r in conn.execute(
                select(versions.c.digest).where(
                    versions.c.state != records.DELETED, versions.c.digest.is_not(None)
                )
            )
        }
        keep_manifests = referenced | leased_manifests
        live = set(leased_objects) | parts.live_objects(conn)
        for digest in keep_manifests:
            live |= records.load_manifest(conn, digest).objects()

        doomed, freed, kept = [], 0, 0
        for info in repo.store.list(OBJECTS):
            d = digest_of_object_key(info.key)
            if (
                d is None
                or d in live
                or info.mtime is not None
                and info.mtime > started - _GRACE_SECONDS
            ):
                kept += 1
            else:
                doomed.append(info.key)
                freed += info.size
        stale_manifests = [
            r[0]
            for r in conn.execute(select(manifests.c.digest).distinct())
            if r[0] not in keep_manifests
        ]
        if not dry_run:
            # references before bytes: the catalog rows go in this transaction, then
            # the objects; a crash in between leaves only unreferenced bytes behind
            if stale_manifests:
                conn.execute(delete(manifests).where(manifests.c.digest.in_(stale_manifests)))
            repo.store.delete(doomed)
            repo.store.delete(manifest_key(d) for d in stale_manifests)
    return GCReport(len(doomed), freed, kept, len(stale_manifests), dry_run)


__all__ = ["GCReport", "collect"]
