"""Retention policies in the catalog: one row per project and per collection that has one.

Each declaration and removal is noted for the store log (catalog/journal.py), so
`cairn recover` brings policies back and `cairn verify --catalog` compares them.

Rows hold rules as plain values (durations in seconds); `cairn.retention` gives them
meaning. Reading the protected aliases of a collection is what every deleting command
asks inside its own write transaction, so a policy changed meanwhile is seen.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, select

from ..foundation.retention import RetentionPolicy, effective
from .journal import note_policy
from .schema import collections, projects, retention_policies
from .sql import now

_RULES = ("keep_last", "keep_younger", "keep_aliased", "keep_used", "protect")


def put(conn: Connection, project_id: int, collection_id: int | None, p: RetentionPolicy) -> None:
    """Declare the policy of a project (`collection_id` None) or a collection, replacing
    any it had."""
    conn.execute(_where(delete(retention_policies), project_id, collection_id))
    conn.execute(
        retention_policies.insert().values(
            project_id=project_id, collection_id=collection_id, updated_at=now(), **_values(p)
        )
    )
    note_policy(conn, project_id, collection_id)


def remove(conn: Connection, project_id: int, collection_id: int | None) -> bool:
    """Remove a policy; False if there was none."""
    done = conn.execute(_where(delete(retention_policies), project_id, collection_id))
    if done.rowcount:
        note_policy(conn, project_id, collection_id)
    return bool(done.rowcount)


def declared(conn: Connection, project: str | None = None) -> list[RetentionPolicy]:
    """Every policy the caller may read (of `project` only, if given), project policies
    before their collections'."""
    q = (
        select(
            retention_policies,
            projects.c.name.label("project"),
            collections.c.name.label("collection"),
        )
        .join(projects, projects.c.id == retention_policies.c.project_id)
        .outerjoin(collections, collections.c.id == retention_policies.c.collection_id)
        .order_by(projects.c.name, collections.c.name.nulls_first())
    )
    if project is not None:
        q = q.where(projects.c.name == project)
    return [_policy(r) for r in conn.execute(q)]


def of(conn: Connection, project_id: int, collection_id: int | None) -> RetentionPolicy | None:
    """The policy declared exactly there, if any."""
    q = _where(select(retention_policies), project_id, collection_id)
    row = conn.execute(q).first()
    return _policy(row) if row is not None else None


def protected(conn: Connection, collection_id: int) -> tuple[str, ...]:
    """The aliases no command may delete a version of, in this collection, right now."""
    project_id = conn.scalar(
        select(collections.c.project_id).where(collections.c.id == collection_id)
    )
    mine = of(conn, int(project_id), collection_id) if project_id is not None else None
    theirs = of(conn, int(project_id), None) if project_id is not None else None
    return effective(theirs, mine)[1]


def _where(stmt: Any, project_id: int, collection_id: int | None) -> Any:
    c = retention_policies.c
    if collection_id is None:
        return stmt.where(and_(c.project_id == project_id, c.collection_id.is_(None)))
    return stmt.where(and_(c.project_id == project_id, c.collection_id == collection_id))


def _values(p: RetentionPolicy) -> dict[str, Any]:
    aliased: Any = None
    if p.keep_aliased is True:
        aliased = True
    elif p.keep_aliased:
        aliased = list(p.keep_aliased)
    return {
        "keep_last": p.keep_last,
        "keep_younger": _seconds(p.keep_younger),
        "keep_aliased": aliased,
        "keep_used": _seconds(p.keep_used),
        "protect": list(p.protect) if p.protect is not None else None,
    }


def _seconds(value: timedelta | None) -> int | None:
    return int(value.total_seconds()) if value is not None else None


def _policy(row: Row) -> RetentionPolicy:
    aliased = row.keep_aliased
    return RetentionPolicy(
        keep_last=row.keep_last,
        keep_younger=timedelta(seconds=row.keep_younger) if row.keep_younger is not None else None,
        keep_aliased=tuple(aliased) if isinstance(aliased, list) else bool(aliased),
        keep_used=timedelta(seconds=row.keep_used) if row.keep_used is not None else None,
        protect=tuple(row.protect) if row.protect is not None else None,
        project=getattr(row, "project", None),
        name=getattr(row, "collection", None),
    )


__all__ = ["declared", "of", "protected", "put", "remove"]
