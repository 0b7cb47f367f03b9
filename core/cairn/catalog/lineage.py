"""Runs and the lineage edges run -logged-> version and version -used by-> run."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from ..foundation.errors import NotFound
from . import journal
from .records import hold, version_query
from .schema import parts, runs, usages, versions
from .sql import insert_ignore, now


def create_run(
    conn: Connection,
    project_id: int,
    *,
    name: str | None,
    job_type: str | None,
    group: str | None,
    kind: str,
    attributes: dict[str, Any],
    run_id: str | None = None,
    config: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> str:
    """Create a run, or resume the one with the same id (an orchestrator's task retry):
    a resumed run is running again and takes the new attributes (the try number...);
    `config` keys given again replace theirs, the others stay. `created_at` keeps a
    copied run's time (`cairn export`)."""
    rid = run_id or uuid.uuid4().hex
    if run_id is not None:
        resumed = conn.execute(
            update(runs)
            .where(runs.c.id == rid)
            .values(attributes=attributes, state="running", finished_at=None)
        )
        if resumed.rowcount:
            if config:
                merge_document(conn, rid, "config", config)
            journal.note_run(conn, "run.started", rid)
            return rid
    insert_ignore(
        conn,
        runs,
        {
            "id": rid,
            "project_id": project_id,
            "name": name,
            "job_type": job_type,
            "group_name": group,
            "kind": kind,
            "attributes": attributes,
            "config": config or {},
            "summary": {},
            "state": "running",
            "created_at": created_at or now(),
        },
        ["id"],
    )
    journal.note_run(conn, "run.started", rid)
    return rid


def merge_document(
    conn: Connection, run_id: str, column: str, values: dict[str, Any]
) -> dict[str, Any]:
    """Set `values`' keys in the run's `column` (config or summary), keep the others, and
    return the result. The row is locked while it is read and written (SQLite: every
    write transaction is exclusive), so concurrent writers of different keys all land."""
    q = select(runs.c[column]).where(runs.c.id == run_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    current = conn.execute(q).scalar_one_or_none()
    if current is None:
        raise NotFound(f"run {run_id} not found")
    merged = {**current, **values}
    conn.execute(update(runs).where(runs.c.id == run_id).values({column: merged}))
    journal.note_run(conn, "run.updated", run_id)
    return merged


def finish_run(conn: Connection, run_id: str, state: str, *, at: datetime | None = None) -> None:
    conn.execute(
        update(runs).where(runs.c.id == run_id).values(state=state, finished_at=at or now())
    )
    journal.note_run(conn, "run.finished", run_id)


def get_run(conn: Connection, run_id: str) -> Row:
    row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"run {run_id} not found")
    return row


def record_use(conn: Connection, run_id: str, version_id: int) -> None:
    """Record that the run uses the version; NotFound if it was deleted meanwhile (the
    version is held while the use is recorded, so retention sees one or the other)."""
    hold(conn, version_id)
    known = conn.scalar(
        select(usages.c.run_id).where(usages.c.run_id == run_id, usages.c.version_id == version_id)
    )
    if known is not None:
        return
    insert_ignore(
        conn,
        usages,
        {"run_id": run_id, "version_id": version_id, "created_at": now()},
        ["run_id", "version_id"],
    )
    journal.note_usage(conn, run_id, version_id)


def users_of(conn: Connection, version_id: int) -> list[Row]:
    q = (
        select(runs)
        .join(usages, usages.c.run_id == runs.c.id)
        .where(usages.c.version_id == version_id)
        .order_by(usages.c.created_at)
    )
    return list(conn.execute(q))


def logged_by_run(conn: Connection, run_id: str) -> list[Row]:
    q = version_query().where(versions.c.run_id == run_id).order_by(versions.c.id)
    return list(conn.execute(q))


def used_by_run(conn: Connection, run_id: str) -> list[Row]:
    q = (
        version_query()
        .join(usages, usages.c.version_id == versions.c.id)
        .where(usages.c.run_id == run_id)
        .order_by(usages.c.created_at)
    )
    return list(conn.execute(q))


def contributors_of(conn: Connection, version_id: int) -> list[Row]:
    q = (
        select(runs)
        .where(runs.c.id.in_(select(parts.c.run_id).where(parts.c.version_id == version_id)))
        .order_by(runs.c.created_at)
    )
    return list(conn.execute(q))


def contributed_by_run(conn: Connection, run_id: str) -> list[Row]:
    """Versions the run upserted parts into, oldest first."""
    q = (
        version_query()
        .where(versions.c.id.in_(select(parts.c.version_id).where(parts.c.run_id == run_id)))
        .order_by(versions.c.id)
    )
    return list(conn.execute(q))
