"""Distributed versions: many writers upsert parts of one PENDING version, one finishes it.

Parts are keyed by (version, writer, path): a retried writer replaces its own part, two
writers claiming one path must agree on its content (DESIGN invariant 7). The first
upsert fixes the store namespace of the version; every later upsert and the finish
store their bytes there, whatever the project's visibility has become since.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Row, select

from ..catalog import parts, records
from ..catalog.schema import versions
from ..catalog.sql import clock, insert_ignore
from ..foundation.errors import CairnError, Conflict, Finalized, NotFound
from ..foundation.manifest import Manifest
from ..foundation.names import Ref, check_name, check_user_alias
from .artifact import Artifact
from .changes import track
from .staging import Writers, Written, stage, write_manifest


def upsert(
    repo: Writers,
    art: Artifact,
    project: str,
    distributed_id: str,
    writer_id: str | None,
    run_id: str | None,
) -> Written:
    check_name(project, kind="project")
    writer = writer_id or run_id
    if not writer:
        raise CairnError("upsert needs a writer_id (or a run) so a retry can replace its part")
    with repo.catalog.write() as conn:
        coll = records.collection(conn, project, art.name, type=art.type, create=True)
        namespace = _pending(repo, conn, coll, distributed_id, create=True).namespace
    with stage(repo, art, namespace=namespace) as staged, repo.catalog.write() as conn:
        pending = _pending(repo, conn, coll, distributed_id, create=False, namespace=namespace)
        parts.replace_writer_parts(conn, pending.id, writer, staged.entries, run_id)
    return Written(pending.id, staged.stats, created=None)  # nothing committed yet


def finish(
    repo: Writers,
    art: Artifact,
    project: str,
    distributed_id: str,
    aliases: Sequence[str],
    run_id: str | None,
) -> Written:
    check_name(project, kind="project")
    wanted = [check_user_alias(a) for a in aliases]
    done = _already_finished(repo, project, art.name, distributed_id)
    if done is not None:
        retried = run_id is not None and done.run_id == run_id
        if retried or not (art.has_files() or art.entries):
            # a retried finish step: the version it committed
            return Written(done.id, None, created=None)
    with repo.catalog.read() as conn:
        try:
            coll = records.collection(conn, project, art.name, type=art.type)
        except NotFound:
            raise CairnError(
                f"cannot finish {project}/{art.name} ({distributed_id}): no writer upserted "
                "any part of it"
            ) from None
        namespace = _pending(repo, conn, coll, distributed_id, create=False).namespace
    with stage(repo, art, namespace=namespace) as staged:
        with repo.catalog.write() as conn:
            pending = _pending(repo, conn, coll, distributed_id, create=False, namespace=namespace)
            if staged.entries:
                parts.replace_writer_parts(conn, pending.id, "__finish__", staged.entries, run_id)
            entries = parts.entries_of(conn, pending.id)
        if not entries:
            raise CairnError(
                f"cannot finish {project}/{art.name} ({distributed_id}): no writer upserted "
                "any part and the finishing artifact has no files"
            )
        manifest = Manifest(entries)
        write_manifest(repo, staged, manifest)
        changes = track(repo.listeners, run=run_id)
        with repo.catalog.write() as conn:
            repo.catalog.gc_guard(conn, exclusive=False)
            pending = _pending(repo, conn, coll, distributed_id, create=False, namespace=namespace)
            changes.watch(conn, coll.id)
            records.save_manifest(conn, manifest, coll.project_id)
            metadata = {**(pending.metadata or {}), **art.metadata}
            records.update_version(
                conn,
                pending.id,
                description=art.description or pending.description,
                metadata=metadata,
                run_id=run_id or pending.run_id,
            )
            version_id, created = records.commit(
                conn,
                coll,
                manifest,
                description=None,
                metadata={},
                run_id=None,
                namespace=namespace,
                pending_id=pending.id,
            )
            if not created:
                # identical to a committed version: that one stands (resolve() follows the
                # digest from this id to it), and this id is spent
                records.update_version(
                    conn, pending.id, state=records.DELETED, digest=manifest.digest
                )
            for a in wanted:
                records.set_alias(conn, coll.id, a, version_id)
            if created:
                changes.committed(version_id)
            events = changes.events(conn)
    repo.listeners.emit(events)  # after the commit: a failing listener cannot undo it
    return Written(version_id, staged.stats, created=created)


def _already_finished(repo: Writers, project: str, name: str, distributed_id: str) -> Row | None:
    """The committed version `distributed_id` became (or the identical one standing for
    it), if it was finished already."""
    with repo.catalog.read() as conn:
        try:
            row = records.resolve(conn, Ref(project, name, distributed_id=distributed_id))
        except NotFound:
            return None
    return row if row.state == records.COMMITTED else None


def _pending(
    repo: Writers,
    conn: Connection,
    coll: Row,
    distributed_id: str,
    *,
    create: bool,
    namespace: str | None = None,
) -> Row:
    """The PENDING version for `distributed_id`, locked for this transaction; with
    `namespace`, the one whose bytes go there (the caller has just stored some)."""
    if create:
        # a new version's bytes go to its project's namespace now; an existing one's stay
        insert_ignore(
            conn,
            versions,
            {
                "collection_id": coll.id,
                "state": records.PENDING,
                "distributed_id": distributed_id,
                "metadata": {},
                "created_at": clock(conn),  # the clock its commit reads too
                "namespace": records.namespace(conn, coll.project_id),
            },
            ["collection_id", "distributed_id"],
        )
    q = select(versions).where(
        versions.c.collection_id == coll.id, versions.c.distributed_id == distributed_id
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise CairnError(
            f"no pending version {distributed_id!r} of {coll.name}: no writer upserted a part"
        )
    if row.state != records.PENDING:
        raise Finalized(
            f"version {distributed_id!r} of {coll.name} was already finished; it takes no "
            "more parts (use a new distributed_id for a new version)"
        )
    if namespace is not None and row.namespace != namespace:
        # abandoned and started again meanwhile, after a visibility change
        raise Conflict(
            f"pending version {distributed_id!r} of {coll.name} was replaced by a new one "
            "while this writer stored its files; run it again"
        )
    return row
