"""Projects, collections, versions, aliases and manifests in the catalog."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ..foundation.errors import Conflict, NotFound
from ..foundation.layout import namespace_for
from ..foundation.manifest import Document, Manifest, ShardedManifest
from ..foundation.names import LATEST, Ref
from . import journal
from .schema import aliases, collections, manifests, parts, projects, version_query, versions
from .sql import clock, insert_ignore, now

PENDING, COMMITTED, DELETED = "PENDING", "COMMITTED", "DELETED"


def project_id(conn: Connection, name: str, *, create: bool = False) -> int:
    if create:
        made = _insert_new(
            conn, projects, {"name": name, "visibility": "private", "created_at": now()}, ["name"]
        )
        if made:
            journal.note_project(conn, "project.created", name)
    pid = conn.scalar(select(projects.c.id).where(projects.c.name == name))
    if pid is None:
        raise NotFound(f"project {name!r} not found; log an artifact to it to create it")
    return int(pid)


def collection(
    conn: Connection, project: str, name: str, *, type: str | None = None, create: bool = False
) -> Row:
    """The collection row; with create=True it is made on first use."""
    pid = project_id(conn, project, create=create)
    made = (
        create
        and type
        and _insert_new(
            conn,
            collections,
            {"project_id": pid, "name": name, "type": type, "created_at": now()},
            ["project_id", "name"],
        )
    )
    row = conn.execute(
        select(collections).where(collections.c.project_id == pid, collections.c.name == name)
    ).first()
    if made and row is not None:
        journal.note_collection(conn, project, row)
    if row is None:
        raise NotFound(f"artifact {project}/{name} not found")
    if type and row.type != type:
        raise Conflict(
            f"artifact {project}/{name} is of type {row.type!r}, not {type!r}; "
            "use another name or the same type"
        )
    return row


def list_collections(conn: Connection, project: str | None = None) -> list[Row]:
    q = (
        select(
            projects.c.name.label("project"),
            collections.c.name,
            collections.c.type,
            collections.c.id,
            func.count(versions.c.id).label("versions"),
        )
        .join(collections, collections.c.project_id == projects.c.id)
        .outerjoin(
            versions,
            and_(versions.c.collection_id == collections.c.id, versions.c.state != DELETED),
        )
        .group_by(projects.c.name, collections.c.name, collections.c.type, collections.c.id)
        .order_by(projects.c.name, collections.c.name)
    )
    if project:
        q = q.where(projects.c.name == project)
    return list(conn.execute(q))


def project(conn: Connection, name: str) -> Row:
    row = conn.execute(select(projects).where(projects.c.name == name)).first()
    if row is None:
        raise NotFound(f"project {name!r} not found")
    return row


def namespace(conn: Connection, pid: int) -> str:
    """The store namespace the project's new versions go to, given its visibility now."""
    row = conn.execute(select(projects.c.name, projects.c.visibility).where(projects.c.id == pid))
    name, visibility = row.one()
    return namespace_for(name, visibility)


def list_projects(conn: Connection) -> list[Row]:
    return list(conn.execute(select(projects).order_by(projects.c.name)))


# -- manifests ---------------------------------------------------------------------------


def save_manifest(conn: Connection, manifest: Manifest, project_id: int) -> None:
    """Record the manifest's documents for one project (rows are per project: the access
    boundary): a format-3 manifest's root and every shard, a shard the project holds
    already (a draft's unchanged shards) left as it is."""
    at = now()

    def insert(d: Document) -> None:
        insert_ignore(
            conn,
            manifests,
            {
                "project_id": project_id,
                "digest": d.digest,
                "body": d.packed,
                "size": d.size,
                "file_count": d.files,
                "created_at": at,
            },
            ["project_id", "digest"],
        )

    new: set[str] = set()  # a digest per new shard (a thousand for a million entries)
    for d in manifest.documents(new_only=True):  # streamed: never all shards in memory
        new.add(d.digest)
        insert(d)
    inherited = [d for d in manifest.inherited() if d not in new]
    held: set[str] = set()
    for i in range(0, len(inherited), _IN_BATCH):
        batch = inherited[i : i + _IN_BATCH]
        held |= set(
            conn.scalars(
                select(manifests.c.digest).where(
                    manifests.c.project_id == project_id, manifests.c.digest.in_(batch)
                )
            )
        )
    if len(held) < len(inherited):  # a draft logged to another project: copy the rest
        for d in manifest.documents(only=set(inherited) - held):
            insert(d)


#: digests per `IN (...)` query
_IN_BATCH = 500


def load_manifest(conn: Connection, digest: str) -> Manifest:
    """A manifest from the catalog; a format-3 one reads its shards through `conn`, so
    use it while `conn` is open (or `load_manifest_whole`)."""
    return Manifest.from_bytes(
        manifest_body(conn, digest), expect_digest=digest, load=lambda d: manifest_body(conn, d)
    )


def load_manifest_whole(conn: Connection, digest: str) -> Manifest:
    """A manifest from the catalog with every shard read now (usable once `conn` closes)."""
    m = load_manifest(conn, digest)
    if not isinstance(m, ShardedManifest):
        return m
    bodies = {d: manifest_body(conn, d) for d in m.shard_digests()}
    return ShardedManifest(m.shards, load=bodies.__getitem__, root=m.to_bytes())


def manifest_body(conn: Connection, digest: str) -> bytes:
    """The stored (compressed) manifest, unchecked: callers verify it against `digest`."""
    # any copy the caller may read: copies in several projects hold the same bytes
    body = conn.scalar(select(manifests.c.body).where(manifests.c.digest == digest).limit(1))
    if body is None:
        raise NotFound(f"manifest {digest} is missing from the catalog")
    return bytes(body)


def manifest_bodies(conn: Connection, digests: list[str]) -> dict[str, bytes]:
    """`manifest_body` of several documents in one query: those found (the caller reads
    a missing one again with `manifest_body`, which says it is missing)."""
    rows = conn.execute(
        select(manifests.c.digest, manifests.c.body).where(manifests.c.digest.in_(digests))
    )
    return {digest: bytes(body) for digest, body in rows}


# -- versions ------------------------------------------------------------------------------


def version_by_id(conn: Connection, version_id: int) -> Row:
    row = conn.execute(version_query().where(versions.c.id == version_id)).first()
    if row is None:
        raise NotFound(f"version id {version_id} not found")
    return row


def resolve(conn: Connection, ref: Ref) -> Row:
    """The version a ref names; DELETED versions are not found."""
    coll = collection(conn, ref.project, ref.name)
    q = version_query().where(versions.c.collection_id == coll.id)
    if ref.distributed_id is not None:
        q = q.where(versions.c.distributed_id == ref.distributed_id)
    elif ref.index is not None:
        q = q.where(versions.c.idx == ref.index)
    else:
        q = q.join(
            aliases,
            and_(aliases.c.version_id == versions.c.id, aliases.c.name == ref.selector),
        )
    row = conn.execute(q).first()
    if row is not None and row.state == DELETED and ref.distributed_id and row.digest:
        # a distributed version that turned out identical to a committed one stands for it
        row = committed_with_digest(conn, coll.id, row.digest)
    if row is None or row.state == DELETED:
        raise NotFound(f"version {ref} not found")
    return row


def list_versions(
    conn: Connection, collection_id: int, *, include_deleted: bool = False
) -> list[Row]:
    q = version_query().where(versions.c.collection_id == collection_id)
    if not include_deleted:
        q = q.where(versions.c.state != DELETED)
    # newest first; PENDING (no index yet) on top
    return list(conn.execute(q.order_by(versions.c.idx.desc().nulls_first(), versions.c.id.desc())))


def aliases_of(conn: Connection, version_ids: Iterable[int]) -> dict[int, list[str]]:
    ids = list(version_ids)
    out: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        rows = conn.execute(
            select(aliases.c.version_id, aliases.c.name)
            .where(aliases.c.version_id.in_(ids))
            .order_by(aliases.c.name)
        )
        for vid, name in rows:
            out[vid].append(name)
    return out


# advisory lock class (PostgreSQL's two-key form) of "deletions in a collection"
_DELETING = 0x0CA1_2602


def guard_deletions(conn: Connection, collection_id: int, *, exclusive: bool) -> None:
    """Take the collection's deletion lock until the transaction ends (PostgreSQL; SQLite's
    write transactions are exclusive already): `cairn retain` exclusive while it decides
    and deletes, a use or a draft shared while it records itself (`hold`)."""
    if conn.dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(text(f"SELECT {fn}(:k, :c)"), {"k": _DELETING, "c": collection_id})


def hold(conn: Connection, version_id: int) -> Row:
    """The version's row, with its collection's deletion lock held shared until the
    transaction ends; NotFound if it is deleted.

    A use or a draft recorded under this lock is seen by a `retain` that comes after it,
    and one that comes after a `retain` sees the version gone. (An advisory lock, not
    `FOR SHARE`: row locks need the UPDATE policy, which a project's readers lack.)
    """
    q = select(versions.c.id, versions.c.collection_id, versions.c.state).where(
        versions.c.id == version_id
    )
    row = conn.execute(q).first()
    if row is not None:
        guard_deletions(conn, row.collection_id, exclusive=False)
        row = conn.execute(q).first()  # a new snapshot: after any retain it waited for
    if row is None or row.state == DELETED:
        raise NotFound(f"version id {version_id} was deleted; resolve its ref again")
    return row


def alias_targets(conn: Connection, collection_id: int) -> dict[str, int]:
    """Every alias of a collection -> the id of the version it points at."""
    rows = conn.execute(
        select(aliases.c.name, aliases.c.version_id).where(aliases.c.collection_id == collection_id)
    )
    return {name: int(vid) for name, vid in rows}


def committed_with_digest(conn: Connection, collection_id: int, digest: str) -> Row | None:
    """The newest committed version with this content (writes through cairn:// may make
    several: docs/FORMAT.md, rule 3)."""
    return conn.execute(
        version_query()
        .where(
            versions.c.collection_id == collection_id,
            versions.c.digest == digest,
            versions.c.state == COMMITTED,
        )
        .order_by(versions.c.idx.desc())
    ).first()


def commit(
    conn: Connection,
    coll: Row,
    manifest: Manifest,
    *,
    description: str | None,
    metadata: dict[str, Any],
    run_id: str | None,
    namespace: str,
    pending_id: int | None = None,
    index: int | None = None,
    created_at: datetime | None = None,
    reuse_identical: bool = True,
) -> tuple[int, bool]:
    """Make `manifest` a committed version of `coll`; return (version id, created).

    Runs inside the caller's write transaction, after every object is durably stored
    in `namespace` (a pending version keeps the namespace it was created with). The
    collection row lock makes the identical-content check and the index bump atomic
    (invariants 3 and 4). `index` and `created_at` keep a copied version's number and
    time (another repository's, `cairn export`): Conflict if the number is taken, or
    the content is already another number's. Without `reuse_identical` (writes through
    cairn://, where `latest` must show what was written) content identical to an older
    version is a new version all the same.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(collections.c.id).where(collections.c.id == coll.id).with_for_update())
    existing = committed_with_digest(conn, coll.id, manifest.digest) if reuse_identical else None
    if existing is not None:
        if index is not None and existing.idx != index:
            raise Conflict(
                f"{existing.project}/{existing.collection}:v{existing.idx} has the content of "
                f"v{index} already"
            )
        return existing.id, False
    following = int(
        conn.execute(
            select(collections.c.next_index).where(collections.c.id == coll.id)
        ).scalar_one()
    )
    if index is None:
        index = following
    elif conn.scalar(
        select(versions.c.id).where(versions.c.collection_id == coll.id, versions.c.idx == index)
    ):
        raise Conflict(f"v{index} of {coll.name} exists already, with other content")
    conn.execute(
        update(collections)
        .where(collections.c.id == coll.id)
        .values(next_index=max(following, index + 1))
    )
    at = created_at or clock(conn)  # one reading: a new version is created and committed at once
    values = {
        "idx": index,
        "state": COMMITTED,
        "digest": manifest.digest,
        "size": manifest.size,
        "file_count": manifest.file_count,
        "committed_at": at,
    }
    if pending_id is not None:
        conn.execute(update(versions).where(versions.c.id == pending_id).values(**values))
        version_id = pending_id
    else:
        version_id = conn.execute(
            versions.insert()
            .values(
                collection_id=coll.id,
                description=description,
                metadata=metadata,
                run_id=run_id,
                created_at=at,
                namespace=namespace,
                **values,
            )
            .returning(versions.c.id)
        ).scalar_one()
    move_latest(conn, coll.id)
    if pending_id is not None:  # its description, metadata and run are in its row
        journal.note_version(conn, "version.committed", int(version_id))
    else:
        row = {
            **values,
            "description": description,
            "metadata": metadata,
            "run_id": run_id,
            "created_at": at,
            "namespace": namespace,
        }
        journal.note_commit(conn, coll, int(version_id), row, manifest.compressed)
    return int(version_id), True


def latest_id(conn: Connection, collection_id: int, *, lock: bool = False) -> int | None:
    """The id of the collection's `latest` version (None: it has none). With `lock`, the
    collection row is locked first (PostgreSQL; SQLite write transactions are exclusive),
    so the answer holds until the transaction ends: a compare-and-swap commit."""
    if lock and conn.dialect.name == "postgresql":
        conn.execute(
            select(collections.c.id).where(collections.c.id == collection_id).with_for_update()
        )
    found = conn.scalar(
        select(aliases.c.version_id).where(
            aliases.c.collection_id == collection_id, aliases.c.name == LATEST
        )
    )
    return None if found is None else int(found)


def move_latest(conn: Connection, collection_id: int) -> None:
    """Point `latest` at the newest committed version (or drop it if there is none)."""
    newest = conn.scalar(
        select(versions.c.id)
        .where(versions.c.collection_id == collection_id, versions.c.state == COMMITTED)
        .order_by(versions.c.idx.desc())
        .limit(1)
    )
    conn.execute(
        delete(aliases).where(aliases.c.collection_id == collection_id, aliases.c.name == LATEST)
    )
    if newest is not None:
        conn.execute(
            aliases.insert().values(collection_id=collection_id, name=LATEST, version_id=newest)
        )


def set_alias(conn: Connection, collection_id: int, name: str, version_id: int) -> None:
    conn.execute(
        delete(aliases).where(aliases.c.collection_id == collection_id, aliases.c.name == name)
    )
    conn.execute(
        aliases.insert().values(collection_id=collection_id, name=name, version_id=version_id)
    )
    journal.note_alias(conn, version_id, name, collection_id)


def remove_alias(conn: Connection, collection_id: int, name: str, version_id: int) -> None:
    gone = conn.execute(
        delete(aliases).where(
            aliases.c.collection_id == collection_id,
            aliases.c.name == name,
            aliases.c.version_id == version_id,
        )
    )
    if gone.rowcount:
        journal.note_alias(conn, None, name, collection_id)


def update_version(conn: Connection, version_id: int, **values: Any) -> None:
    conn.execute(update(versions).where(versions.c.id == version_id).values(**values))
    if values.keys() & {"description", "metadata"}:
        journal.note_version(conn, "version.edited", version_id)


def mark_deleted(conn: Connection, version: Row) -> None:
    """Delete a version: its aliases go, its number stays spent (records: the deletion;
    the fold drops the aliases of a deleted version itself)."""
    conn.execute(delete(aliases).where(aliases.c.version_id == version.id))
    if version.state == PENDING:
        # an abandoned version's parts are not needed by anyone
        conn.execute(delete(parts).where(parts.c.version_id == version.id))
    # an abandoned distributed id may be reused by a new attempt
    conn.execute(
        update(versions)
        .where(versions.c.id == version.id)
        .values(
            state=DELETED,
            distributed_id=None if version.state == PENDING else version.distributed_id,
        )
    )
    move_latest(conn, version.collection_id)
    journal.note_version(conn, "version.deleted", version.id)


def _insert_new(conn: Connection, table: Any, row: dict[str, Any], keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; whether this call inserted the row."""
    mod = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = mod.insert(table).values(**row).on_conflict_do_nothing(index_elements=keys)
    return conn.execute(stmt.returning(table.c.id)).first() is not None


def project_name(conn: Connection, pid: int) -> str:
    return str(conn.scalar(select(projects.c.name).where(projects.c.id == pid)))
