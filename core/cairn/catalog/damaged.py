"""Damaged objects: what `cairn verify` could not read back intact (docs/FORMAT.md).

A row says "the store's copy of this object, in this namespace, is bad": missing, corrupt,
or in a pack that is gone or cut short. Writers treat such an object as absent and store
a good copy over it; the row goes once that copy is durable (or once verify reads the
object back intact). The table is normally empty, so writers read a namespace's rows
whole, in one query, instead of looking digests up one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, text

from .schema import damaged
from .sql import delete_digests, insert_ignore, now

MISSING, CORRUPT = "missing", "corrupt"


def digests(conn: Connection, namespace: str) -> set[str]:
    """Every damaged object of `namespace`."""
    # plain SQL: asked by every writer and re-log, where compiling a select() in a new
    # process costs more than running it
    rows = conn.execute(
        text("SELECT digest FROM damaged WHERE namespace = :namespace"), {"namespace": namespace}
    )
    return {r[0] for r in rows}


def record(conn: Connection, namespace: str, problems: Mapping[str, str]) -> None:
    """Report objects (digest -> MISSING or CORRUPT) as damaged; known ones stay as they are."""
    found = now()
    rows = [
        {"namespace": namespace, "digest": d, "problem": p, "found_at": found}
        for d, p in sorted(problems.items())
    ]
    insert_ignore(conn, damaged, rows, ["namespace", "digest"])


def clear(conn: Connection, namespace: str, digests: Iterable[str]) -> None:
    """Forget that objects were damaged: a good copy of each is durably stored now."""
    delete_digests(conn, damaged, namespace, digests)


__all__ = ["CORRUPT", "MISSING", "clear", "digests", "record"]
