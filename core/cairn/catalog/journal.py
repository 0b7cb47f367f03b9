"""What a write transaction changed, noted for the store log (docs/FORMAT.md "Store log").

The catalog-write functions (records, lineage, access, retention) call `note_*` after they
change a row: each note is the row's whole new value as an item of the log's state. The
notes of one transaction are buffered on its connection, and `Catalog.write` hands them to
its journal (the store log) as one record just before it commits: the record is durable
in the store before the catalog commit, so every committed change has its record.
"""

from __future__ import annotations

import base64
import weakref
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row, select

from .schema import (
    collections,
    manifests,
    members,
    projects,
    retention_policies,
    runs,
    usages,
    version_query,
    versions,
)

_BUFFER = "cairn_journal"
#: a committed version's record carries its manifest (zlib, base64) up to this size
INLINE_MANIFEST = 4096
#: manifests of more files than this are not compressed again to see whether they fit
_INLINE_FILES = 64


class Journal(Protocol):
    """Where a write transaction's notes go before it commits."""

    def flush(self, conn: Connection, entries: list[dict[str, Any]]) -> None: ...

    def committed(self) -> None:
        """The transaction whose entries were flushed last has committed."""


def begin(conn: Connection) -> list[dict[str, Any]]:
    """Start buffering this transaction's notes on `conn`."""
    buffer: list[dict[str, Any]] = []
    conn.info[_BUFFER] = buffer
    return buffer


def end(conn: Connection) -> None:
    conn.info.pop(_BUFFER, None)


def note(
    conn: Connection,
    kind: str,
    key: str,
    project: str,
    value: dict[str, Any],
    *,
    namespace: str | None = None,
) -> None:
    """Add one entry to the transaction's record (a no-op outside `Catalog.write`).
    `namespace`, when the caller knows it, spares the journal looking it up."""
    buffer = conn.info.get(_BUFFER)
    if buffer is not None:
        entry = {"kind": kind, "key": key, "project": project, "value": value}
        if namespace is not None:
            entry["namespace"] = namespace
        buffer.append(entry)


def recording(conn: Connection) -> bool:
    """Is this transaction's record being kept (`Catalog.write` with a journal)?"""
    return conn.info.get(_BUFFER) is not None


def stamp(value: datetime | None) -> str | None:
    """A catalog time as the log writes it: ISO 8601 in UTC, microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


# -- rows as items ----------------------------------------------------------------------------


def project_item(conn: Connection, name: str) -> dict[str, Any]:
    row = conn.execute(select(projects).where(projects.c.name == name)).one()
    rows = conn.execute(select(members).where(members.c.project_id == row.id))
    return {
        "name": row.name,
        "visibility": row.visibility,
        "created_at": stamp(row.created_at),
        "created_by": row.created_by,
        "members": {
            m.principal: {
                "role": m.role,
                "granted_by": m.granted_by,
                "created_at": stamp(m.created_at),
            }
            for m in rows
        },
    }


def collection_item(row: Row) -> dict[str, Any]:
    return {"type": row.type, "created_at": stamp(row.created_at)}


def version_item(row: Row) -> dict[str, Any]:
    """A version row joined with its names (records.version_query)."""
    return {
        "project": row.project,
        "collection": row.collection,
        "type": row.type,
        "version": row.idx,
        "state": row.state,
        "digest": row.digest,
        "namespace": row.namespace,
        "size": row.size,
        "file_count": row.file_count,
        "description": row.description,
        "metadata": row.metadata,
        "run": row.run_id,
        "distributed_id": row.distributed_id,
        "created_at": stamp(row.created_at),
        "committed_at": stamp(row.committed_at),
    }


def policy_key(project: str, collection: str | None) -> str:
    """`policy:<p>` for a project's policy, `policy:<p>/<c>` for a collection's."""
    return f"policy:{project}" if collection is None else f"policy:{project}/{collection}"


def policy_item(row: Row) -> dict[str, Any]:
    """A retention_policies row: its rules as stored (durations in seconds)."""
    return {
        "keep_last": row.keep_last,
        "keep_younger": row.keep_younger,
        "keep_aliased": row.keep_aliased,
        "keep_used": row.keep_used,
        "protect": row.protect,
        "updated_at": stamp(row.updated_at),
        "updated_by": row.updated_by,
    }


def run_item(row: Row, project: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "project": project,
        "name": row.name,
        "job_type": row.job_type,
        "group": row.group_name,
        "kind": row.kind,
        "attributes": row.attributes,
        "state": row.state,
        "config": row.config,
        "summary": row.summary,
        "created_at": stamp(row.created_at),
        "finished_at": stamp(row.finished_at),
    }


# -- notes, one per kind of change (docs/FORMAT.md lists them) ---------------------------------


def note_project(conn: Connection, kind: str, name: str) -> None:
    if not recording(conn):
        return
    note(conn, kind, f"project:{name}", name, project_item(conn, name))


def note_collection(conn: Connection, project: str, row: Row) -> None:
    if not recording(conn):
        return
    key = f"collection:{project}/{row.name}"
    note(conn, "collection.created", key, project, collection_item(row))


def note_commit(
    conn: Connection, coll: Row, version_id: int, values: dict[str, Any], manifest_body: Any
) -> None:
    """A version committed with `values` (the row's columns): its item without reading
    the row back, the common case of a log (a distributed finish reads it: note_version)."""
    if not recording(conn):
        return
    project = project_name_of(conn, coll.project_id)
    value = {
        "project": project,
        "collection": coll.name,
        "type": coll.type,
        "version": values["idx"],
        "state": values["state"],
        "digest": values["digest"],
        "namespace": values["namespace"],
        "size": values["size"],
        "file_count": values["file_count"],
        "description": values["description"],
        "metadata": values["metadata"],
        "run": values["run_id"],
        "distributed_id": None,
        "created_at": stamp(values["created_at"]),
        "committed_at": stamp(values["committed_at"]),
    }
    if values["run_id"] is not None:
        value["producer"] = _run_value(conn, values["run_id"])
    body = manifest_body() if values["file_count"] <= _INLINE_FILES else None
    if body is not None and len(body) <= INLINE_MANIFEST:
        value["_manifest"] = base64.b64encode(body).decode()
    key = f"version:{project}/{coll.name}:{values['idx']}"
    note(conn, "version.committed", key, project, value, namespace=values["namespace"])


#: project names by id, per database engine (a project is never renamed nor deleted)
_PROJECT_NAMES: weakref.WeakKeyDictionary[Engine, dict[int, str]] = weakref.WeakKeyDictionary()


def project_name_of(conn: Connection, project_id: int) -> str:
    """A project's name by id, remembered per engine."""
    names = _PROJECT_NAMES.setdefault(conn.engine, {})
    if project_id not in names:
        query = select(projects.c.name).where(projects.c.id == project_id)
        names[project_id] = str(conn.scalar(query))
    return names[project_id]


def forget_names(engine: Engine) -> None:
    """The catalog behind `engine` was rebuilt (recover): ids may name other projects."""
    _PROJECT_NAMES.pop(engine, None)


def note_version(conn: Connection, kind: str, version_id: int) -> None:
    if not recording(conn):
        return
    row = conn.execute(version_query().where(versions.c.id == version_id)).one()
    if row.idx is None:
        return  # a PENDING version is not logged: only what was committed is
    value = version_item(row)
    if kind == "version.committed":
        if row.run_id is not None:
            # the producer as it was at commit, so a version record stands on its own
            value["producer"] = _run_value(conn, row.run_id)
        body = conn.scalar(
            select(manifests.c.body).where(
                manifests.c.digest == row.digest,
                manifests.c.project_id
                == select(projects.c.id).where(projects.c.name == row.project).scalar_subquery(),
            )
        )
        if body is not None and len(body) <= INLINE_MANIFEST:
            # a small manifest rides along: recover then needs no request per version
            value["_manifest"] = base64.b64encode(bytes(body)).decode()
    key = f"version:{row.project}/{row.collection}:{row.idx}"
    note(conn, kind, key, row.project, value)


def note_alias(conn: Connection, version_id: int | None, alias: str, coll_id: int) -> None:
    """Alias `alias` of collection `coll_id` now names `version_id` (None: removed)."""
    if not recording(conn):
        return
    row = conn.execute(
        select(collections.c.name, projects.c.name.label("project"))
        .join(projects, projects.c.id == collections.c.project_id)
        .where(collections.c.id == coll_id)
    ).one()
    index = None
    if version_id is not None:
        index = conn.scalar(select(versions.c.idx).where(versions.c.id == version_id))
    kind = "alias.set" if index is not None else "alias.removed"
    key = f"alias:{row.project}/{row.name}:{alias}"
    note(conn, kind, key, row.project, {"version": index})


def note_policy(conn: Connection, project_id: int, collection_id: int | None) -> None:
    """The retention policy of a project (`collection_id` None) or collection was declared
    or removed: `policy.set` with the row, or `policy.removed` (the item then says
    `removed`, and the state holds no policy there)."""
    if not recording(conn):
        return
    project = project_name_of(conn, project_id)
    name = None
    if collection_id is not None:
        name = conn.scalar(select(collections.c.name).where(collections.c.id == collection_id))
    c = retention_policies.c
    where = c.collection_id.is_(None) if collection_id is None else c.collection_id == collection_id
    row = conn.execute(select(retention_policies).where(c.project_id == project_id, where)).first()
    key = policy_key(project, name)
    if row is None:
        note(conn, "policy.removed", key, project, {"removed": True})
    else:
        note(conn, "policy.set", key, project, policy_item(row))


def note_run(conn: Connection, kind: str, run_id: str) -> None:
    if not recording(conn):
        return
    value = _run_value(conn, run_id)
    note(conn, kind, f"run:{run_id}", value["project"], value)


def note_usage(conn: Connection, run_id: str, version_id: int) -> None:
    if not recording(conn):
        return
    v = conn.execute(version_query().where(versions.c.id == version_id)).one()
    if v.idx is None:
        return
    at = conn.scalar(
        select(usages.c.created_at).where(
            usages.c.run_id == run_id, usages.c.version_id == version_id
        )
    )
    run_project = _run_value(conn, run_id)["project"]
    key = f"usage:{run_id}|{v.project}/{v.collection}:{v.idx}"
    note(conn, "run.used", key, run_project, {"created_at": stamp(at)})


def _run_value(conn: Connection, run_id: str) -> dict[str, Any]:
    row = conn.execute(
        select(runs, projects.c.name.label("project_name"))
        .join(projects, projects.c.id == runs.c.project_id)
        .where(runs.c.id == run_id)
    ).one()
    return run_item(row, row.project_name)
