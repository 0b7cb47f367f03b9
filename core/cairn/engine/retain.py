"""`cairn retain`: apply every retention policy, then say what `gc` would free.

One write transaction per collection: it takes the collection's deletion lock, reads
the policy, aliases, uses and writers' leases again under those locks, and marks
what the policy lets go DELETED (aliases dropped, `latest` moved) in one step. A run
killed between two collections leaves each collection either done or untouched; running
it again finishes the work. Bytes are never deleted here: `gc` frees them afterwards.

Safe beside writers (docs/RETENTION.md): a version is kept while a writer drafts from it
or stages identical content (a lease names its manifest), while a running run uses it,
or when a run recorded a use of it since shortly before this run began. Uses and drafts
record themselves holding the collection's deletion lock shared (`records.hold`), which
this transaction holds exclusive, so each either lands before this transaction reads
them or finds the version deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Row, func, select

from ..catalog import access, leases, records
from ..catalog import retention as policies
from ..catalog.schema import collections, runs, usages, versions
from ..catalog.sql import clock
from ..foundation.errors import InvalidName
from ..foundation.names import Ref, check_name
from ..foundation.retention import Candidate, RetentionPolicy, decide, effective
from ..foundation.sizes import format_size
from .changes import track

if TYPE_CHECKING:
    from .needs import Maintained

#: uses recorded this long before a retention run began count as "during" it: writers'
#: clocks may be behind the catalog's
USE_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Deletion:
    """A version `retain` deleted (or would delete), and the policy that let it go."""

    ref: str
    size: int
    created_at: datetime
    policy: str


@dataclass(frozen=True)
class RetentionReport:
    """What one `retain` run did (or, with `dry_run`, would do)."""

    dry_run: bool
    deleted: tuple[Deletion, ...]
    #: versions the policies keep, in the collections they cover
    kept: int
    #: versions a policy would let go but a writer or a running run has in use
    in_use: tuple[str, ...]
    #: collections whose policy has a keep rule
    collections: int
    #: bytes `gc` would free afterwards, and (dry runs) of those, bytes it would free anyway
    gc_bytes: int
    gc_bytes_before: int

    @property
    def bytes_deleted(self) -> int:
        """The logical size of the deleted versions (shared content counted per version)."""
        return sum(d.size for d in self.deleted)

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"{verb} {d.ref} ({format_size(d.size)}, policy {d.policy})" for d in self.deleted]
        lines += [f"kept {ref}: in use by a writer or a running run" for ref in self.in_use]
        then = "would then free" if self.dry_run else "would now free"
        already = (
            f" ({format_size(self.gc_bytes_before)} of it unneeded before)"
            if self.gc_bytes_before
            else ""
        )
        lines.append(
            f"{verb} {_count(len(self.deleted), 'version')}, kept {self.kept} in "
            f"{_count(self.collections, 'collection')} with a policy; "
            f"`cairn gc` {then} {format_size(self.gc_bytes)}{already}"
        )
        return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class _Outcome:
    deleted: list[Deletion]
    deleted_ids: list[int]
    kept: int
    in_use: list[str]


def retain(repo: Maintained, target: str | None, *, dry_run: bool) -> RetentionReport:
    """Apply the policies of every collection (of project `target`, or of the collection
    `project/name`)."""
    project, name = scope(target) if target is not None else (None, None)
    with repo.catalog.read() as conn:
        access.require_maintenance(conn, "run retain")
        started = clock(conn)
        if project is not None:
            records.project_id(conn, project)  # NotFound for an unknown project
            if name is not None:
                records.collection(conn, project, name)
        work = [c for c in records.list_collections(conn, project) if name in (None, c.name)]
    outcomes = []
    for coll in work:
        changes = track(repo.listeners)
        with repo.catalog.read() if dry_run else repo.catalog.write() as conn:
            if not dry_run:
                changes.watch(conn, coll.id)
            outcome = _collection(conn, coll, started, dry_run=dry_run)
            for vid in [] if outcome is None or dry_run else outcome.deleted_ids:
                changes.deleted(vid)
            events = changes.events(conn)
        repo.listeners.emit(events)  # cairn.version.deleted, after the commit
        if outcome is not None:
            outcomes.append(outcome)
    doomed = [i for o in outcomes for i in o.deleted_ids]
    gc_bytes, before = _estimate(repo, doomed if dry_run else [])
    return RetentionReport(
        dry_run=dry_run,
        deleted=tuple(d for o in outcomes for d in o.deleted),
        kept=sum(o.kept for o in outcomes),
        in_use=tuple(r for o in outcomes for r in o.in_use),
        collections=len(outcomes),
        gc_bytes=gc_bytes,
        gc_bytes_before=before,
    )


def _estimate(repo: Maintained, doomed: Sequence[int]) -> tuple[int, int]:
    from .gc import estimate

    after, now = estimate(repo, without=doomed)
    return after, now if doomed else 0


def scope(target: str) -> tuple[str, str | None]:
    """`project` or `project/name` -> (project, name or None); a version ref is refused."""
    if ":" in target or "@" in target:
        raise InvalidName(f"expected a project or project/name, not a version ref: {target!r}")
    if "/" not in target:
        return check_name(target, kind="project"), None
    ref = Ref.parse(target)
    return ref.project, ref.name


def _collection(
    conn: Connection, coll: Row, started: datetime, *, dry_run: bool
) -> _Outcome | None:
    """Apply the collection's effective policy in `conn`'s transaction."""
    if not dry_run:
        # uses and drafts of the collection wait for this transaction, or are seen by it
        records.guard_deletions(conn, coll.id, exclusive=True)
    if not dry_run and conn.dialect.name == "postgresql":
        # the collection row, as a commit locks it: commits wait for this transaction
        # instead of deadlocking on `latest`; FOR NO KEY UPDATE leaves alias edits'
        # foreign-key checks free
        conn.execute(
            select(collections.c.id)
            .where(collections.c.id == coll.id)
            .with_for_update(key_share=True)
        )
    pid = records.project_id(conn, coll.project)
    own = policies.of(conn, pid, coll.id)
    policy, protected = effective(policies.of(conn, pid, None), own)
    if policy is None or not policy.keeps:
        return None
    scope = f"{coll.project}/{coll.name}" if own is not None else coll.project
    rows = _committed(conn, coll.id)
    now = clock(conn)
    candidates = _candidates(conn, coll.id, rows, started, now)
    doomed = decide(policy, candidates, protected=protected, now=now)
    free = [replace(c, in_use=False) for c in candidates]
    held = {c.id for c in decide(policy, free, protected=protected, now=now)} - {
        c.id for c in doomed
    }
    by_id = {r.id: r for r in rows}
    if not dry_run:
        for c in doomed:
            records.mark_deleted(conn, by_id[c.id])
    ref = f"{coll.project}/{coll.name}"
    return _Outcome(
        deleted=[
            Deletion(f"{ref}:v{c.index}", by_id[c.id].size, by_id[c.id].created_at, scope)
            for c in doomed
        ],
        deleted_ids=[c.id for c in doomed],
        kept=len(rows) - len(doomed),
        in_use=[f"{ref}:v{by_id[i].idx}" for i in sorted(held, key=lambda i: by_id[i].idx)],
    )


def _committed(conn: Connection, collection_id: int) -> list[Row]:
    q = select(versions).where(
        versions.c.collection_id == collection_id, versions.c.state == records.COMMITTED
    )
    return list(conn.execute(q.order_by(versions.c.idx)))


def _candidates(
    conn: Connection, collection_id: int, rows: list[Row], started: datetime, now: datetime
) -> list[Candidate]:
    committed = select(versions.c.id).where(
        versions.c.collection_id == collection_id, versions.c.state == records.COMMITTED
    )
    tags = records.aliases_of(conn, [r.id for r in rows])
    uses = conn.execute(
        select(usages.c.version_id, func.max(usages.c.created_at))
        .where(usages.c.version_id.in_(committed))
        .group_by(usages.c.version_id)
    )
    last_used = {vid: _aware(at) for vid, at in uses}
    running = conn.execute(
        select(usages.c.version_id)
        .join(runs, runs.c.id == usages.c.run_id)
        .where(
            usages.c.version_id.in_(committed),
            runs.c.state == "running",
            usages.c.created_at > now - leases.LEASE_TTL,
        )
    )
    busy = {r[0] for r in running}
    since = _aware(started) - USE_MARGIN
    busy |= {vid for vid, at in last_used.items() if at >= since}
    drafted = leases.held(conn, [r.digest for r in rows])
    return [
        Candidate(
            id=r.id,
            index=r.idx,
            created_at=_aware(r.committed_at or r.created_at),
            aliases=frozenset(tags[r.id]),
            last_used=last_used.get(r.id),
            in_use=r.id in busy or (r.namespace, r.digest) in drafted,
        )
        for r in rows
    ]


def _aware(at: datetime) -> datetime:
    """SQLite hands back naive datetimes: cairn writes them in UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def policy_for(
    conn: Connection, project: str, name: str | None
) -> tuple[RetentionPolicy | None, tuple[str, ...]]:
    """(the policy that applies, the protected aliases) for a project or a collection."""
    pid = records.project_id(conn, project)
    mine = None
    if name is not None:
        coll = records.collection(conn, project, name)
        mine = policies.of(conn, pid, coll.id)
    theirs = policies.of(conn, pid, None)
    policy, protected = effective(theirs, mine)
    if policy is not None:
        policy = policy.at(project, name if mine is not None else None)
    return policy, protected


__all__ = ["Deletion", "RetentionReport", "policy_for", "retain", "scope"]
