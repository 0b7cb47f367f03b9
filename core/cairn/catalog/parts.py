"""Parts of PENDING distributed versions: which writer claims which path."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Row, delete, select

from ..foundation.errors import Conflict
from ..foundation.manifest import Entry
from .schema import parts, versions
from .sql import now


def replace_writer_parts(
    conn: Connection, version_id: int, writer_id: str, entries: Iterable[Entry], run_id: str | None
) -> None:
    """Swap a writer's earlier contribution for `entries`; conflicting claims raise."""
    entries = list(entries)
    conn.execute(
        delete(parts).where(parts.c.version_id == version_id, parts.c.writer_id == writer_id)
    )
    others = {
        r.path: r
        for r in conn.execute(
            select(parts.c.path, parts.c.writer_id, parts.c.entry).where(
                parts.c.version_id == version_id,
                parts.c.path.in_([e.path for e in entries]),
            )
        )
    }
    for e in entries:
        other = others.get(e.path)
        if other is not None and not Entry.from_json(e.path, other.entry).same_content(e):
            raise Conflict(
                f"{e.path!r} is already claimed by writer {other.writer_id!r} with different "
                f"content; writer {writer_id!r} must use another path"
            )
    if entries:
        conn.execute(
            parts.insert(),
            [
                {
                    "version_id": version_id,
                    "writer_id": writer_id,
                    "path": e.path,
                    "entry": e.to_json(),
                    "digest": e.digest,
                    "run_id": run_id,
                    "created_at": now(),
                }
                for e in entries
            ],
        )


def entries_of(conn: Connection, version_id: int) -> list[Entry]:
    """Every part's entry, one per path (writers that agree on a path collapse)."""
    out: dict[str, Entry] = {}
    for r in conn.execute(
        select(parts.c.path, parts.c.entry).where(parts.c.version_id == version_id)
    ):
        out.setdefault(r.path, Entry.from_json(r.path, r.entry))
    return list(out.values())


def writers_of(conn: Connection, version_id: int) -> list[Row]:
    return list(
        conn.execute(
            select(parts.c.writer_id, parts.c.run_id)
            .where(parts.c.version_id == version_id)
            .distinct()
        )
    )


def live_objects(conn: Connection) -> set[tuple[str, str]]:
    """(namespace, object digest) of every part of every PENDING version."""
    out: set[tuple[str, str]] = set()
    q = (
        select(versions.c.namespace, parts.c.path, parts.c.entry)
        .join(versions, versions.c.id == parts.c.version_id)
        .where(versions.c.state == "PENDING")
    )
    for namespace, path, entry in conn.execute(q):
        out.update((namespace, d) for d in Entry.from_json(path, entry).objects())
    return out
