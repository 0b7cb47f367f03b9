"""Project access: visibility, members, and what the connected database role may do.

On PostgreSQL the catalog enforces access itself: row-level security on every table
(migration 0002, docs/ACCESS.md), whatever SQL a role sends. This module reads and
changes the settings, checks a right before work starts (so a refused upload sends no
byte), and turns a refusal into `PermissionDenied` naming the project and the missing
right. The embedded SQLite catalog is single-user: settings are recorded, so a
repository moved to PostgreSQL keeps them, and every operation is allowed.
"""

from __future__ import annotations

from sqlalchemy import Connection, Row, case, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ..foundation.errors import Conflict, NotFound, PermissionDenied
from ..foundation.projects import (
    Member,
    ProjectInfo,
    Right,
    check_principal,
    check_role,
    check_visibility,
)
from . import journal
from .roles import current_role, enforced, refused
from .schema import members, projects
from .sql import now

# what cairn_access() answers: the caller's right on a project, -1 if there is none
MISSING, NONE, READ, WRITE, ADMIN = -1, 0, 1, 2, 3
_LEVEL: dict[Right, int] = {"read": READ, "write": WRITE, "admin": ADMIN}
_RIGHT: dict[int, Right] = {READ: "read", WRITE: "write", ADMIN: "admin"}
_ROLE_FOR = {"read": "reader", "write": "writer", "admin": "admin"}
_VERB = {"read": "read", "write": "write to", "admin": "administer"}


def level(conn: Connection, project: str) -> int:
    """The caller's right on `project` (NONE..ADMIN), or MISSING if it does not exist."""
    if enforced(conn):
        answer = conn.scalar(text("SELECT cairn_access(:p, current_user)"), {"p": project})
        return int(answer)
    exists = conn.scalar(select(projects.c.id).where(projects.c.name == project))
    return MISSING if exists is None else ADMIN


def require(conn: Connection, project: str, right: Right) -> None:
    """Raise PermissionDenied unless the caller holds `right` on `project`.

    A project that does not exist passes: a write creates it (its creator becomes its
    admin), a read reports NotFound as before.
    """
    if not enforced(conn):
        return
    held = level(conn, project)
    if held != MISSING and held < _LEVEL[right]:
        raise denied(conn, project, right)


def denied(conn: Connection, project: str, right: Right) -> PermissionDenied:
    role, needed = current_role(conn), _ROLE_FOR[right]
    return PermissionDenied(
        f"role {role} may not {_VERB[right]} project {project}: {needed} role needed; "
        f"an admin of {project} can grant it (cairn project grant {project} {role} "
        f"--role {needed})"
    )


def require_maintenance(conn: Connection, action: str) -> None:
    """Only a role that sees every project's rows may run repository-wide maintenance."""
    if not enforced(conn):
        return
    allowed = conn.scalar(
        text(
            "SELECT cairn_is_admin(current_user) OR coalesce((SELECT rolbypassrls "
            "FROM pg_roles WHERE rolname = current_user), false)"
        )
    )
    if not allowed:
        owner = conn.scalar(
            text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'projects'::regclass")
        )
        raise PermissionDenied(
            f"role {current_role(conn)} may not {action}: it must see every project's "
            f"versions and writers' leases; run it as the catalog's owner ({owner}), a "
            "member of that role, or a role with BYPASSRLS (docs/ACCESS.md)"
        )


# -- settings -----------------------------------------------------------------------------


def project_info(conn: Connection, name: str) -> ProjectInfo:
    """A project's settings and members, as the caller may see them."""
    held, row = _project(conn, name, "read")
    rank = case({"admin": 0, "writer": 1, "reader": 2}, value=members.c.role, else_=3)
    rows = conn.execute(
        select(members).where(members.c.project_id == row.id).order_by(rank, members.c.principal)
    )
    return ProjectInfo(
        name=row.name,
        visibility=row.visibility,
        created_at=row.created_at,
        created_by=row.created_by,
        members=tuple(Member(r.principal, r.role, r.granted_by, r.created_at) for r in rows),
        access=_RIGHT[held],
        enforced=enforced(conn),
    )


def create_project(conn: Connection, name: str, visibility: str) -> None:
    """Create a project; on PostgreSQL the creating role becomes its admin (a trigger)."""
    check_visibility(visibility)
    dialect = postgresql if enforced(conn) else sqlite
    stmt = dialect.insert(projects).values(name=name, visibility=visibility, created_at=now())
    stmt = stmt.on_conflict_do_nothing(index_elements=["name"]).returning(projects.c.id)
    if conn.execute(stmt).first() is None:
        raise Conflict(
            f"project {name!r} exists already; `cairn project show {name}` shows its settings"
        )
    journal.note_project(conn, "project.created", name)


def set_visibility(conn: Connection, name: str, visibility: str) -> str:
    """Change the project's visibility; returns the visibility it had."""
    check_visibility(visibility)
    before = str(_project(conn, name, "admin")[1].visibility)
    conn.execute(update(projects).where(projects.c.name == name).values(visibility=visibility))
    journal.note_project(conn, "project.visibility", name)
    return before


def grant(conn: Connection, name: str, principal: str, role: str) -> None:
    """Give `principal` (a database user or group) `role` on the project, replacing any."""
    check_principal(principal)
    check_role(role)
    pid = _administer(conn, name)
    if enforced(conn) and not conn.scalar(
        text("SELECT count(*) FROM pg_roles WHERE rolname = :p"), {"p": principal}
    ):
        raise NotFound(
            f"no database role {principal!r}: create it first (CREATE ROLE {principal} "
            "LOGIN) or check the spelling"
        )
    if _role_of(conn, pid, principal) == "admin" and role != "admin":
        _keep_an_admin(conn, pid, name, principal)
    conn.execute(
        delete(members).where(members.c.project_id == pid, members.c.principal == principal)
    )
    conn.execute(
        members.insert().values(
            project_id=pid,
            principal=principal,
            role=role,
            granted_by=current_role(conn),
            created_at=now(),
        )
    )
    journal.note_project(conn, "project.members", name)


def revoke(conn: Connection, name: str, principal: str) -> str:
    """Take `principal`'s role on the project away; returns the role it had."""
    check_principal(principal)
    pid = _administer(conn, name)
    role = _role_of(conn, pid, principal)
    if role is None:
        raise NotFound(f"{principal} has no role in project {name}")
    if role == "admin":
        _keep_an_admin(conn, pid, name, principal)
    conn.execute(
        delete(members).where(members.c.project_id == pid, members.c.principal == principal)
    )
    # the creator sees its project row by policy (docs/ACCESS.md): a revoked creator
    # must not, so the project forgets who created it
    conn.execute(
        update(projects)
        .where(projects.c.id == pid, projects.c.created_by == principal)
        .values(created_by=None)
    )
    journal.note_project(conn, "project.members", name)
    return role


def _administer(conn: Connection, name: str) -> int:
    """The project's id, if the caller may administer it."""
    return int(_project(conn, name, "admin")[1].id)


def _project(conn: Connection, name: str, right: Right) -> tuple[int, Row]:
    """(the caller's level, the project's row), if the caller holds `right` on it."""
    held = level(conn, name)
    if held == MISSING:
        raise NotFound(f"project {name!r} not found")
    if held < _LEVEL[right]:
        raise denied(conn, name, right)
    return held, conn.execute(select(projects).where(projects.c.name == name)).one()


def _role_of(conn: Connection, pid: int, principal: str) -> str | None:
    return conn.scalar(
        select(members.c.role).where(members.c.project_id == pid, members.c.principal == principal)
    )


def _keep_an_admin(conn: Connection, pid: int, name: str, principal: str) -> None:
    admins = conn.scalar(
        select(func.count()).where(members.c.project_id == pid, members.c.role == "admin")
    )
    if admins == 1:
        raise Conflict(
            f"{principal} is the last admin of project {name}; make another role admin first"
        )


# -- refusals from the database -------------------------------------------------------------

__all__ = [
    "create_project",
    "denied",
    "enforced",
    "grant",
    "level",
    "project_info",
    "refused",
    "require",
    "require_maintenance",
    "revoke",
    "set_visibility",
]
