"""Garbage collection: delete store objects no live version, part or writer needs.

Runs in write transactions holding the exclusive GC guard: writers record what they
rely on under the shared guard before they check existence, so nothing a writer is
about to commit can be deleted here (DESIGN invariant 8).

Packs (docs/FORMAT.md) go whole when none of their objects is live, and are rewritten
with their live objects alone when at least half of their bytes are dead.

Liveness is per store namespace (docs/ACCESS.md): a version's objects are live in the
namespace it records, a lease's in the namespace it was taken in. The same digest may
be live in `objects/` and dead in `projects/vision/objects/`: only the dead copy goes.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import blake3
from sqlalchemy import Connection, delete, select

from ..catalog import leases, packs, parts, records
from ..catalog.packs import Member
from ..catalog.schema import manifests, projects, versions
from ..foundation.layout import (
    MANIFESTS,
    OBJECTS,
    PACKS,
    PROJECTS,
    SHARED,
    digest_of_manifest_key,
    digest_of_object_key,
    digest_of_pack_key,
    pack_key,
)
from ..storage import ObjectInfo, Store
from . import objects as packing
from .gcrecord import Doomed, DoomedList, GCRecord, utc_stamp, write_record
from .gcreport import GCReport
from .scratch import DigestSet

if TYPE_CHECKING:
    from .needs import Maintained

#: objects and manifests younger than this are left alone by default: a writer working
#: from another process's view (an expired lease, a clock-skewed machine, a writer that
#: has uploaded and not yet leased) may be about to commit them
DEFAULT_GRACE = 3600.0
# a pack is rewritten with its live objects alone once at least this share of the bytes
# of the objects it indexes is dead
_REPACK_DEAD = 0.5
_BATCH = 8192  # listed objects judged at a time


class _Live:
    """What must stay, per namespace: object digests (a DigestSet: in memory up to
    200,000 of them, past that in a scratch database in the cache, so a million live
    files are a million rows on disk, not a set in memory) and manifest digests (a few
    per version and shard, in memory)."""

    def __init__(self, folder: str) -> None:
        self.objects = DigestSet(folder, "gc")
        self.manifests: defaultdict[str, set[str]] = defaultdict(set)

    def close(self) -> None:
        self.objects.close()

    def __enter__(self) -> _Live:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Repack:
    """A stored pack to rewrite with its live objects alone."""

    info: ObjectInfo
    namespace: str
    name: str
    indexed: int  # objects its index rows name
    alive: list[Member]


@dataclass
class _Plan:
    """What one gc run deletes: keys with their (namespace, digest), catalog rows, packs
    to rewrite; and what it counts. A pack's index rows are named by the pack, never
    object by object: a million dead packed files are a few dozen packs here, and a
    million dead loose objects a file in the cache (DoomedList)."""

    doomed: DoomedList
    rows: list[str] = field(default_factory=list)  # manifest rows
    #: packs whose index rows go: (namespace, pack, how many objects they index)
    forget: list[tuple[str, str, int]] = field(default_factory=list)
    rewrite: list[_Repack] = field(default_factory=list)
    objects_deleted: int = 0
    objects_kept: int = 0
    bytes_kept: int = 0
    manifests_deleted: int = 0
    packs_deleted: int = 0
    freed: int = 0
    dead_in_packs: int = 0
    dead_bytes_in_packs: int = 0
    objects_recent: int = 0
    bytes_recent: int = 0
    objects_foreign: int = 0


def collect(repo: Maintained, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> GCReport:
    """Two transactions, each holding the GC guard exclusive. The first decides, moves
    the pack index off what goes (rewriting packs that are mostly dead), records the
    decision in the store and commits; the second deletes the bytes that are still dead
    (a writer may have leased some since). The record goes before any deletion and
    references before bytes: a crash in between leaves only unreferenced bytes behind,
    for the next run, and the record of why."""
    repo_id = repo.identity.require("run gc")
    started = time.time()
    record: str | None = None
    scratch = repo.cache.root  # where the live sets are kept
    with DoomedList(scratch) as doomed:
        with repo.catalog.write() as conn:
            repo.catalog.gc_guard(conn, exclusive=True)
            with _live(conn, scratch) as live:
                plan = _plan(
                    conn, live, _owned(conn), _Age(started, grace), _listing(repo.store), doomed
                )
            rewritten = plan.rewrite
            if not dry_run:
                rewritten = [r for r in plan.rewrite if _rewrite(repo.store, conn, r)]
                for r in rewritten:
                    doomed.append(Doomed(r.info.key, r.namespace, r.name, r.info.size))
                if doomed or plan.rows or plan.forget:
                    record = write_record(
                        repo.store,
                        _record(repo, repo_id, plan, rewritten, started=started, grace=grace),
                        scratch,
                    )
                if plan.rows:
                    conn.execute(delete(manifests).where(manifests.c.digest.in_(plan.rows)))
                by_namespace: defaultdict[str, list[str]] = defaultdict(list)
                for namespace, name, count in plan.forget:
                    if count:
                        by_namespace[namespace].append(name)
                for namespace, names in by_namespace.items():
                    packs.forget_packs(conn, namespace, names)
            for r in rewritten:
                plan.objects_deleted += r.indexed - len(r.alive)
                plan.freed += r.info.size - sum(m.size for m in r.alive)
        if not dry_run and doomed:
            with repo.catalog.write() as conn:
                repo.catalog.gc_guard(conn, exclusive=True)
                # a writer may have found and even committed some of them in between
                with _live(conn, scratch) as now:
                    for batch in doomed.batches(_BATCH):
                        repo.store.delete(_still_dead(batch, now))
    return GCReport(
        plan.objects_deleted,
        plan.freed,
        plan.objects_kept,
        plan.manifests_deleted,
        dry_run,
        plan.packs_deleted,
        len(rewritten),
        plan.dead_in_packs,
        plan.dead_bytes_in_packs,
        plan.bytes_kept,
        objects_recent=plan.objects_recent,
        bytes_recent=plan.bytes_recent,
        objects_foreign=plan.objects_foreign,
        grace=grace,
        record=record,
    )


def _record(
    repo: Maintained,
    repo_id: str,
    plan: _Plan,
    rewritten: list[_Repack],
    *,
    started: float,
    grace: float,
) -> GCRecord:
    return GCRecord(
        repository=repo_id,
        catalog=repo.catalog.display_url(),
        started_at=utc_stamp(started),
        grace_seconds=grace,
        delete=plan.doomed,
        manifest_rows=sorted(plan.rows),
        repacked=[
            {"namespace": r.namespace, "pack": r.name, "kept": str(len(r.alive))} for r in rewritten
        ],
        forgotten=[
            {"namespace": ns, "pack": name, "objects": count}
            for ns, name, count in plan.forget
            if count
        ],
    )


def _owned(conn: Connection) -> set[str]:
    """The store namespaces this catalog owns: the shared one, each of its projects',
    and every namespace a version of it records."""
    names = {r[0] for r in conn.execute(select(projects.c.name))}
    recorded = {r[0] for r in conn.execute(select(versions.c.namespace).distinct())}
    return {SHARED} | names | recorded


@dataclass(frozen=True)
class _Age:
    """Which objects are old enough to go: last written a grace period before gc began."""

    started: float
    grace: float

    def old(self, info: ObjectInfo) -> bool:
        # an object whose age the store does not report is kept, unless there is no grace
        if info.mtime is None:
            return self.grace <= 0
        return info.mtime <= self.started - self.grace


def estimate(repo: Maintained, *, without: Collection[int] = ()) -> tuple[int, int]:
    """(bytes gc would free if the versions `without` were deleted, bytes it would free
    now), once the grace period has passed: a plan for each (the store listed for each),
    no change anywhere (expired leases are ignored, not dropped). What `cairn retain`
    reports."""
    started = time.time()
    scratch = repo.cache.root
    with repo.catalog.read() as conn:
        owned, age = _owned(conn), _Age(started, 0.0)
        with _live(conn, scratch, without=without, drop=False) as live, DoomedList(scratch) as d:
            after = _plan(conn, live, owned, age, _listing(repo.store), d)
        if not without:
            return _freed(after), _freed(after)
        # the store listed again rather than held: it may hold millions of objects
        with _live(conn, scratch, drop=False) as live, DoomedList(scratch) as d:
            now = _plan(conn, live, owned, age, _listing(repo.store), d)
    return _freed(after), _freed(now)


def _freed(plan: _Plan) -> int:
    return plan.freed + sum(r.info.size - sum(m.size for m in r.alive) for r in plan.rewrite)


def _listing(store: Store) -> Iterator[ObjectInfo]:
    # the shared namespace at the root, every private one under projects/
    return itertools.chain(
        store.list(OBJECTS), store.list(MANIFESTS), store.list(PACKS), store.list(PROJECTS)
    )


def _still_dead(doomed: list[Doomed], now: _Live) -> list[str]:
    """The keys of `doomed` (a batch: a DoomedList may hold a million) that no live
    version or writer needs `now`."""
    alive = _alive(now, [(d.namespace, d.digest) for d in doomed])
    return [
        d.key
        for d in doomed
        if (d.namespace, d.digest) not in alive and d.digest not in now.manifests[d.namespace]
    ]


def _plan(
    conn: Connection,
    live: _Live,
    owned: set[str],
    age: _Age,
    listing: Iterable[ObjectInfo],
    doomed: DoomedList,
) -> _Plan:
    """What goes: everything in an owned namespace no live version, part or lease needs
    and written a grace period before gc began (younger dead objects stay); the keys to
    delete go to `doomed`."""
    plan = _Plan(doomed)
    stored_packs: dict[tuple[str, str], ObjectInfo] = {}
    listed = iter(listing)
    # the listing a batch at a time: the live set is asked about a batch of objects at once
    while batch := list(itertools.islice(listed, _BATCH)):
        loose: list[tuple[ObjectInfo, str, str, bool]] = []  # (info, ns, digest, object?)
        for info in batch:
            obj = digest_of_object_key(info.key)
            man = digest_of_manifest_key(info.key) if obj is None else None
            pack = digest_of_pack_key(info.key) if obj is None and man is None else None
            found = obj or man or pack
            if found is None:
                continue
            if found[0] not in owned:
                plan.objects_foreign += 1
            elif pack is not None:
                stored_packs[pack] = info
            else:
                loose.append((info, *found, obj is not None))
        alive = _alive(live, [(ns, d) for _, ns, d, is_object in loose if is_object])
        for info, ns, d, is_object in loose:
            kept = (ns, d) in alive if is_object else d in live.manifests[ns]
            _judge(plan, age, info, (ns, d), is_object=is_object, needed=kept)
    # the index a pack at a time; a pack the store holds that has no rows in it is
    # judged with none
    unindexed = dict(stored_packs)
    for (namespace, name), members in packs.each_pack(conn):
        if (namespace, name) in unindexed:
            info = unindexed.pop((namespace, name))
            _judge_pack(plan, live, age, (namespace, name), info, members)
        elif namespace in owned:
            # the index of a pack that is gone (lost behind cairn's back): writers must
            # not count on it; `cairn verify` reports the versions that needed it
            plan.forget.append((namespace, name, len(members)))
    for where, info in sorted(unindexed.items()):
        _judge_pack(plan, live, age, where, info, [])
    # catalog rows: a manifest no live version or lease of any namespace names
    needed = set().union(*live.manifests.values())
    plan.rows = [
        r[0] for r in conn.execute(select(manifests.c.digest).distinct()) if r[0] not in needed
    ]
    return plan


def _alive(live: _Live, objects: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of `objects` (namespace, digest) that are live."""
    by_namespace: defaultdict[str, list[str]] = defaultdict(list)
    for ns, d in objects:
        by_namespace[ns].append(d)
    return {(ns, d) for ns, ds in by_namespace.items() for d in live.objects.among(ns, ds)}


def _judge(
    plan: _Plan,
    age: _Age,
    info: ObjectInfo,
    where: tuple[str, str],
    *,
    is_object: bool,
    needed: bool,
) -> None:
    """Plan for the loose object or manifest `where` (namespace, digest): keep it while
    `needed`, or delete it once old enough."""
    if needed:
        if is_object:
            plan.objects_kept += 1
            plan.bytes_kept += info.size
    elif not age.old(info):
        plan.objects_recent += 1
        plan.bytes_recent += info.size
    else:
        plan.doomed.append(Doomed(info.key, *where, info.size))
        if is_object:
            plan.objects_deleted += 1
            plan.freed += info.size
        else:
            plan.manifests_deleted += 1


def _judge_pack(
    plan: _Plan,
    live: _Live,
    age: _Age,
    where: tuple[str, str],
    info: ObjectInfo,
    members: list[Member],
) -> None:
    """Plan for the stored pack `where` (namespace, name) whose index rows are
    `members`: keep it, delete it, or rewrite it with its live objects alone."""
    namespace, name = where
    found = live.objects.among(namespace, [name, *(m.digest for m in members)])
    alive = [m for m in members if m.digest in found]
    if name in found:  # a writer's, not indexed yet
        plan.objects_kept += len(members)
        plan.bytes_kept += info.size
    elif not alive and not age.old(info):
        plan.objects_recent += max(1, len(members))
        plan.bytes_recent += info.size
    elif not alive:
        plan.doomed.append(Doomed(info.key, namespace, name, info.size))
        plan.forget.append((namespace, name, len(members)))
        plan.objects_deleted += len(members)
        plan.packs_deleted += 1
        plan.freed += info.size
    else:
        plan.objects_kept += len(alive)
        live_bytes = sum(m.size for m in alive)
        plan.bytes_kept += live_bytes
        indexed_bytes = sum(m.size for m in members)
        if live_bytes <= (1 - _REPACK_DEAD) * indexed_bytes and age.old(info):
            plan.rewrite.append(_Repack(info, namespace, name, len(members), alive))
        else:
            plan.dead_in_packs += len(members) - len(alive)
            plan.dead_bytes_in_packs += indexed_bytes - live_bytes


def _rewrite(store: Store, conn: Connection, repack: _Repack) -> bool:
    """Copy a pack's live objects into a new pack and point the index at it; False
    (and nothing changed) when one of them does not match its digest."""
    data = store.get(repack.info.key)
    blobs = []
    for m in repack.alive:
        piece = data[m.start : m.start + m.size]
        if blake3.blake3(piece).hexdigest() != m.digest:
            return False  # keep every byte for `cairn verify` to report
        blobs.append((m.digest, piece))
    pack, body, moved = packing.build(blobs)
    if pack == repack.name:  # nothing would change
        return False
    store.put(pack_key(pack, namespace=repack.namespace), body)
    store.sync()
    packs.forget_packs(conn, repack.namespace, [repack.name])
    packs.record(conn, repack.namespace, moved)
    return True


def _live(
    conn: Connection, folder: str, *, without: Collection[int] = (), drop: bool = True
) -> _Live:
    """Objects and manifests of every non-deleted version (but those of `without`), every
    PENDING version's parts and every unexpired lease, each in its own namespace; `drop`
    expired leases on the way. The objects go to a scratch database in `folder`."""
    live = _Live(folder)
    try:
        _gather(conn, live, without, drop=drop)
    except BaseException:
        live.close()
        raise
    return live


def _gather(conn: Connection, live: _Live, without: Collection[int], *, drop: bool) -> None:
    leased, leased_manifests = leases.live(conn, drop_expired=drop)
    for namespace, d in leased:
        # a leased digest is an object, or the manifest its writer is about to commit
        live.objects.add(namespace, [d])
        live.manifests[namespace].add(d)
    for namespace, d in parts.live_objects(conn):
        live.objects.add(namespace, [d])
    spared = sorted(set(without))
    versions_live = [
        (ns, d)
        for vid, ns, d in conn.execute(
            select(versions.c.id, versions.c.namespace, versions.c.digest).where(
                versions.c.state != records.DELETED, versions.c.digest.is_not(None)
            )
        )
        if not spared or vid not in without
    ]
    # each manifest, and each shard versions share, is read once per namespace: its
    # objects go straight into that namespace's live set (no set kept per manifest or
    # per shard: 80 versions of a million files are one set of a million, not 80)
    read: set[tuple[str, str]] = set()
    for namespace, d in itertools.chain(versions_live, leased_manifests):
        live.manifests[namespace].add(d)
        if (namespace, d) in read:
            continue
        read.add((namespace, d))
        m = records.load_manifest(conn, d)
        shards = m.shard_digests()
        live.manifests[namespace].update(shards)  # a format-3 manifest's shards live with it
        if not shards:
            live.objects.add(namespace, m.each_object())
        for s in shards:
            if (namespace, s) not in read:
                read.add((namespace, s))
                live.objects.add(namespace, m.shard_objects(s))


__all__ = ["GCReport", "collect", "estimate"]
