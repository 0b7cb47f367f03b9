"""Who the catalog sees: the database role, and PostgreSQL's refusals as PermissionDenied.

SQLite is single-user and enforces nothing; PostgreSQL enforces access with roles and
row-level security (docs/ACCESS.md).
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from ..foundation.errors import PermissionDenied

_INSUFFICIENT_PRIVILEGE = "42501"


def enforced(conn: Connection) -> bool:
    """Does this catalog enforce access? (PostgreSQL; SQLite is single-user.)"""
    return conn.dialect.name == "postgresql"


def current_role(conn: Connection) -> str | None:
    """The database role the catalog sees (None on SQLite)."""
    return str(conn.scalar(text("SELECT current_user"))) if enforced(conn) else None


_TABLE = re.compile(r'for table "([^"]+)"')


def refused(conn: Connection, exc: DBAPIError) -> PermissionDenied | None:
    """The PermissionDenied for a statement the database refused, else None.

    Operations check the right they need first (`require`), naming the project; this
    covers what slips past such a check, e.g. a role revoked meanwhile.
    """
    if getattr(exc.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
        return None
    match = _TABLE.search(str(exc.orig))
    what = f"table {match.group(1)}" if match else "this catalog"
    try:
        role = current_role(conn)
    except DBAPIError:
        role = "this role"
    return PermissionDenied(
        f"role {role} may not change {what}: the catalog refused it (row-level security; "
        "a project writer or admin role is needed, docs/ACCESS.md)"
    )
