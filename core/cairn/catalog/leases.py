"""Writer leases: what a writer relies on before its version is committed.

A writer records every object digest it will reference (found or uploaded) under a
lease, inside the shared GC guard, before it checks which objects exist. GC treats
leased digests as live until the lease is dropped or expires (DESIGN invariant 8).
A lease is taken in one store namespace and protects its digests there only: the
objects, and the manifest object the writer is about to commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Connection, delete, select, update

from .schema import lease_objects, leases
from .sql import IN_LIST, insert_ignore, now

LEASE_TTL = timedelta(hours=6)


def create(conn: Connection, *, namespace: str, manifest_digest: str | None = None) -> str:
    """A new lease in `namespace`, protecting `manifest_digest`'s objects if given."""
    lease_id = uuid.uuid4().hex
    conn.execute(
        leases.insert().values(
            id=lease_id,
            namespace=namespace,
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


def live(
    conn: Connection, *, drop_expired: bool = True
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(namespace, digest) pairs under unexpired leases: (leased digests, leased manifests
    whose objects are protected); drops expired leases unless `drop_expired` is False
    (in a read-only transaction)."""
    moment = now()
    if drop_expired:
        expired = conn.execute(select(leases.c.id).where(leases.c.expires_at < moment))
        for lease_id in [r[0] for r in expired]:
            drop(conn, lease_id)
    fresh = leases.c.expires_at >= moment
    digests = {
        (r.namespace, r.digest)
        for r in conn.execute(
            select(leases.c.namespace, lease_objects.c.digest)
            .join(leases, leases.c.id == lease_objects.c.lease_id)
            .where(fresh)
            .distinct()
        )
    }
    manifests = {
        (r.namespace, r.manifest_digest)
        for r in conn.execute(
            select(leases.c.namespace, leases.c.manifest_digest).where(
                leases.c.manifest_digest.is_not(None), fresh
            )
        )
    }
    return digests, manifests


def held(conn: Connection, digests: Iterable[str]) -> set[tuple[str, str]]:
    """Which of these manifest digests an unexpired lease names, as (namespace, digest):
    a draft's parent, or the manifest a writer is about to commit (`cairn retain`)."""
    wanted = sorted(set(digests))
    fresh = leases.c.expires_at >= now()
    out: set[tuple[str, str]] = set()
    for i in range(0, len(wanted), IN_LIST):
        batch = wanted[i : i + IN_LIST]
        parents = select(leases.c.namespace, leases.c.manifest_digest).where(
            leases.c.manifest_digest.in_(batch), fresh
        )
        staged = (
            select(leases.c.namespace, lease_objects.c.digest)
            .join(leases, leases.c.id == lease_objects.c.lease_id)
            .where(lease_objects.c.digest.in_(batch), fresh)
        )
        out |= {(ns, d) for ns, d in conn.execute(parents)}
        out |= {(ns, d) for ns, d in conn.execute(staged)}
    return out
