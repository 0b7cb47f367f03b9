"""The catalog's side of repository identity: the one `repository` row (revision 0007).

A catalog is bound to one repository id, the id its store's `config.json` holds. Binding
sets the id once (`UPDATE ... WHERE id IS NULL`: of two processes binding at once, the
first wins and the second reads its id), marked `pending` until the store holds the id
too; the rules that decide when to bind live in `cairn.identity`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from .schema import repository
from .sql import now


@dataclass(frozen=True)
class CatalogIdentity:
    """What the catalog knows of its repository."""

    #: the repository id, None while the catalog is bound to no store
    id: str | None
    #: bound, but the store may not hold the id yet (a binding under way or interrupted)
    pending: bool
    #: held versions when upgraded to revision 0007: made before repository ids
    legacy: bool
    #: the store URL it was bound with (informational: URLs change)
    store_url: str | None


def load(conn: Connection) -> CatalogIdentity:
    row = conn.execute(
        select(repository.c.id, repository.c.pending, repository.c.legacy, repository.c.store_url)
    ).first()
    if row is None:  # the migration inserts the row; a damaged catalog has none
        return CatalogIdentity(None, False, False, None)
    return CatalogIdentity(row.id, bool(row.pending), bool(row.legacy), row.store_url)


def bind(conn: Connection, repo_id: str, store_url: str) -> CatalogIdentity:
    """Bind an unbound catalog to `repo_id` (pending); returns the binding that holds,
    which is another process's when it bound first."""
    conn.execute(
        update(repository)
        .where(repository.c.id.is_(None))
        .values(id=repo_id, pending=True, store_url=store_url, bound_at=now())
    )
    return load(conn)


def settle(conn: Connection, repo_id: str) -> None:
    """The store holds `repo_id` now: the binding is complete."""
    conn.execute(
        update(repository)
        .where(repository.c.id == repo_id, repository.c.pending.is_(True))
        .values(pending=False)
    )


__all__ = ["CatalogIdentity", "bind", "load", "settle"]
