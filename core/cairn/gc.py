"""Garbage collection: delete store objects no live version, part or writer needs.

Runs inside one write transaction holding the exclusive GC guard: writers record what
they rely on under the shared guard before they check existence, so nothing a writer
is about to commit can be deleted here (DESIGN invariant 8).

Liveness is per store namespace (docs/ACCESS.md): a version's objects are live in the
namespace it records, a lease's in the namespace it was taken in. The same digest may
be live in `objects/` and dead in `projects/vision/objects/`: only the dead copy goes.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, select

from .catalog import leases, parts, records
from .catalog.schema import manifests, versions
from .layout import (
    MANIFESTS,
    OBJECTS,
    PROJECTS,
    digest_of_manifest_key,
    digest_of_object_key,
)

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


@dataclass
class _Live:
    """What must stay, per namespace: object digests and manifest digests."""

    objects: defaultdict[str, set[str]]
    manifests: defaultdict[str, set[str]]


def collect(repo: Repository, *, dry_run: bool = False) -> GCReport:
    started = time.time()
    with repo.catalog.write() as conn:
        repo.catalog.gc_guard(conn, exclusive=True)
        live = _live(conn)

        doomed: list[str] = []
        doomed_manifests: list[str] = []
        freed = kept = 0
        store = repo.store
        # the shared namespace at the root, every private one under projects/
        listing = itertools.chain(store.list(OBJECTS), store.list(MANIFESTS), store.list(PROJECTS))
        for info in listing:
            recent = info.mtime is not None and info.mtime > started - _GRACE_SECONDS
            obj = digest_of_object_key(info.key)
            if obj is not None:
                if recent or obj[1] in live.objects[obj[0]]:
                    kept += 1
                else:
                    doomed.append(info.key)
                    freed += info.size
                continue
            man = digest_of_manifest_key(info.key)
            if man is not None and not recent and man[1] not in live.manifests[man[0]]:
                doomed_manifests.append(info.key)
        # catalog rows: a manifest no live version or lease of any namespace names
        needed = set().union(*live.manifests.values())
        stale_rows = [
            r[0] for r in conn.execute(select(manifests.c.digest).distinct()) if r[0] not in needed
        ]
        if not dry_run:
            # references before bytes: the catalog rows go in this transaction, then
            # the objects; a crash in between leaves only unreferenced bytes behind
            if stale_rows:
                conn.execute(delete(manifests).where(manifests.c.digest.in_(stale_rows)))
            store.delete(doomed)
            store.delete(doomed_manifests)
    return GCReport(len(doomed), freed, kept, len(doomed_manifests), dry_run)


def _live(conn: Connection) -> _Live:
    """Objects and manifests of every non-deleted version, every PENDING version's parts
    and every unexpired lease, each in its own namespace."""
    live = _Live(defaultdict(set), defaultdict(set))
    leased, leased_manifests = leases.live(conn)
    for namespace, d in leased:
        # a leased digest is an object, or the manifest its writer is about to commit
        live.objects[namespace].add(d)
        live.manifests[namespace].add(d)
    for namespace, d in parts.live_objects(conn):
        live.objects[namespace].add(d)
    versions_live = conn.execute(
        select(versions.c.namespace, versions.c.digest)
        .where(versions.c.state != records.DELETED, versions.c.digest.is_not(None))
        .distinct()
    )
    objects_of: dict[str, set[str]] = {}  # a manifest read once, however many namespaces
    for namespace, d in itertools.chain(versions_live, leased_manifests):
        if d not in objects_of:
            objects_of[d] = records.load_manifest(conn, d).objects()
        live.manifests[namespace].add(d)
        live.objects[namespace] |= objects_of[d]
    return live


__all__ = ["GCReport", "collect"]
