"""Writer leases: what a writer relies on before its version is committed.

A writer records every object digest it will reference (found or uploaded) under a
lease, inside the shared GC guard, before it checks which objects exist. GC treats
leased digests as live until the lease is dropped or expires (DESIGN invariant 8).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Connection, delete, select, update

from .schema import lease_objects, leases
from .sql import insert_ignore, now

LEASE_TTL = timedelta(hours=6)


def create(conn: Connection, *, manifest_digest: str | None = None) -> str:
    lease_id = uuid.uuid4().hex
    conn.execute(
        leases.insert().values(
            id=lease_id,
            manifest_digest=manifest_digest,
            created_at=now(),
            expires_at=now() + LEASE_TTL,
        )
    )
    return lease_id


def add_objects(conn: Connection, lease_id: str, digests: Iterable[str]) -> None:
    rows = [{"lease_id": lease_id, "digest": d} for d in set(digests)]
    insert_ignore(conn, lease_objects, rows, ["lease_id", "digest"])
    conn.execute(update(leases).where(leases.c.id == lease_id).values(expires_at=now() + LEASE_TTL))


def drop(conn: Connection, lease_id: str) -> None:
    conn.execute(delete(lease_objects).where(lease_objects.c.lease_id == lease_id))
    conn.execute(delete(leases).where(leases.c.id == lease_id))


def live(conn: Connection) -> tuple[set[str], set[str]]:
    """(object digests, manifest digests) under unexpired leases; drops expired leases."""
    expired = [r[0] for r in conn.execute(select(leases.c.id).where(leases.c.expires_at < now()))]
    for lease_id in expired:
        drop(conn, lease_id)
    objects = {r[0] for r in conn.execute(select(lease_objects.c.digest).distinct())}
    manifests = {
        r[0]
        for r in conn.execute(
            select(leases.c.manifest_digest).where(leases.c.manifest_digest.is_not(None))
        )
    }
    return objects, manifests
