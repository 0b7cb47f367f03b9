"""Projects: the namespace and the access boundary of collections (docs/ACCESS.md).

A project's visibility says who reads and writes it without a role: `private` (members
only), `public` (everyone reads, members write) or `open` (everyone reads and writes).
Members hold a role: `reader`, `writer` or `admin` (who changes visibility and members).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .errors import InvalidName
from .layout import SHARED, namespace_for, namespace_prefix

VISIBILITIES = ("private", "public", "open")
ROLES = ("reader", "writer", "admin")
Right = Literal["read", "write", "admin"]

# a database role name: PostgreSQL's 63 bytes, and the characters IAM-style users use
_PRINCIPAL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@$-]{0,62}$")


@dataclass(frozen=True)
class Member:
    """A database role (a user, or a group whose members inherit it) and its role."""

    principal: str
    role: str
    granted_by: str | None
    granted_at: datetime


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    visibility: str
    created_at: datetime
    #: the database role that created the project (None on SQLite)
    created_by: str | None = None
    #: members, admins first, then by name
    members: tuple[Member, ...] = ()
    #: what the caller may do here: "read", "write" or "admin"
    access: Right = "admin"
    #: True where the catalog enforces access (PostgreSQL); SQLite is single-user
    enforced: bool = False
    #: set by a visibility change that moves new versions to another store namespace:
    #: what becomes of the bytes of existing and new versions
    note: str | None = None


def store_move_note(project: str, before: str, after: str) -> str | None:
    """One line on where versions' bytes live after a visibility change, if it matters.

    Bytes never move: existing versions keep theirs where they were logged, new versions
    go to the namespace of the new visibility (docs/ACCESS.md).
    """
    old, new = namespace_for(project, before), namespace_for(project, after)
    if old == new:
        return None
    if new == SHARED:
        return (
            f"new versions of {project} go to the shared objects/; those logged while it "
            f"was private keep their bytes under {namespace_prefix(old)}, so give its new "
            "readers read access there too"
        )
    return (
        f"new versions of {project} go to {namespace_prefix(new)}; those logged while it "
        f"was {before} keep their bytes in the shared objects/, readable by every cairn user"
    )


def check_visibility(value: str) -> str:
    if value not in VISIBILITIES:
        raise InvalidName(f"invalid visibility {value!r}: use private, public or open")
    return value


def check_role(value: str) -> str:
    if value not in ROLES:
        raise InvalidName(f"invalid role {value!r}: use reader, writer or admin")
    return value


def check_principal(value: str) -> str:
    """A user or group name as the database knows it."""
    if not isinstance(value, str) or not _PRINCIPAL.match(value):
        raise InvalidName(
            f"invalid user or group {value!r}: use the database role's name (up to 63 "
            "letters, digits, '_', '.', '@', '$' or '-')"
        )
    return value
