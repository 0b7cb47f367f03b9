"""Small SQL building blocks shared by the catalog modules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

# values per IN (...) list: well inside every database's limit on bound parameters
IN_LIST = 500


def now() -> datetime:
    return datetime.now(timezone.utc)


def clock(conn: Connection) -> datetime:
    """The time a version's `created_at` and `committed_at` take: the database server's
    clock on PostgreSQL, where writers on many machines (with clocks apart) create and
    commit one version; this machine's on SQLite, a catalog on one machine."""
    if conn.dialect.name == "postgresql":
        moment: datetime = conn.execute(select(func.now())).scalar_one()
        return moment
    return now()


def insert_ignore(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]] | dict[str, Any], keys: list[str]
) -> None:
    """INSERT ... ON CONFLICT (keys) DO NOTHING, on SQLite and PostgreSQL alike."""
    if not rows:
        return
    mod = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = mod.insert(table).on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, [rows] if isinstance(rows, dict) else list(rows))


def delete_digests(
    conn: Connection, table: Table, namespace: str, digests: Iterable[str], *, by: str = "digest"
) -> None:
    """Delete the rows of `digests` in `namespace` from a table keyed by both (or whose
    column `by` holds one of them)."""
    wanted = sorted(set(digests))
    column = table.c[by]
    for i in range(0, len(wanted), IN_LIST):
        conn.execute(
            delete(table).where(table.c.namespace == namespace, column.in_(wanted[i : i + IN_LIST]))
        )
