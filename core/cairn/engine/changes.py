"""What one catalog write changed, gathered inside its transaction as events.

    changes = track(listeners, run=run_id)   # Changes, or NoChanges if nobody listens
    with catalog.write() as conn:
        changes.watch(conn, collection_id)   # before touching its aliases
        ... commit, set aliases, delete ...
        changes.committed(version_id)
        events = changes.events(conn)        # still inside: reads what is about to commit
    listeners.emit(events)                   # after: only a committed change is announced

Alias events come from comparing the watched collections' aliases before and after, so
every path that moves one (an explicit alias, `latest` following a commit or a delete)
announces it the same way.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection

from ..catalog import records
from .events import (
    ALIAS_MOVED,
    ALIAS_REMOVED,
    METADATA_CHANGED,
    VERSION_COMMITTED,
    VERSION_DELETED,
    Event,
    Listeners,
)


class Changes:
    """The changes of one write transaction (see the module docstring)."""

    def __init__(self, *, run: str | None = None):
        self._run = run
        self._before: dict[int, dict[str, int]] = {}
        self._committed: list[int] = []
        self._deleted: list[int] = []
        self._edited: dict[int, tuple[str, ...]] = {}

    def watch(self, conn: Connection, collection_id: int) -> None:
        """Remember the collection's aliases before this transaction changes them."""
        if collection_id not in self._before:
            self._before[collection_id] = records.alias_targets(conn, collection_id)

    def committed(self, version_id: int) -> None:
        self._committed.append(version_id)

    def deleted(self, version_id: int) -> None:
        self._deleted.append(version_id)

    def edited(self, version_id: int, fields: tuple[str, ...]) -> None:
        if fields:
            self._edited[version_id] = fields

    def events(self, conn: Connection) -> list[Event]:
        """The events, in NAMES order: commits, deletes, edits, aliases removed, moved."""
        at = datetime.now(timezone.utc)
        moved: list[tuple[str, int, int | None]] = []  # alias, version, previous version
        removed: list[tuple[str, int]] = []
        for coll, before in self._before.items():
            after = records.alias_targets(conn, coll)
            for alias, vid in sorted(after.items()):
                if before.get(alias) != vid:
                    moved.append((alias, vid, before.get(alias)))
            removed += [(a, vid) for a, vid in sorted(before.items()) if a not in after]
        ids = {*self._committed, *self._deleted, *self._edited}
        ids |= {vid for _, vid, _ in moved} | {vid for _, vid in removed}
        ids |= {prev for _, _, prev in moved if prev is not None}
        rows = {i: records.version_by_id(conn, i) for i in sorted(ids)}
        tags = records.aliases_of(conn, list(rows))

        def event(name: str, vid: int, **extra: Any) -> Event:
            row = rows[vid]
            run = self._run if name != VERSION_COMMITTED else (row.run_id or self._run)
            return Event(
                event=name,
                ref=_ref(row),
                project=row.project,
                name=row.collection,
                type=row.type,
                version=f"v{row.idx}",
                version_id=row.id,
                digest=row.digest,
                aliases=tuple(tags[vid]),
                occurred_at=at,
                run=run,
                metadata=MappingProxyType(dict(row.metadata or {})),
                **extra,
            )

        out = [event(VERSION_COMMITTED, v) for v in self._committed]
        out += [event(VERSION_DELETED, v) for v in self._deleted]
        out += [event(METADATA_CHANGED, v, changed=f) for v, f in self._edited.items()]
        out += [event(ALIAS_REMOVED, v, alias=a) for a, v in removed]
        out += [
            event(ALIAS_MOVED, v, alias=a, previous=_ref(rows[p]) if p is not None else None)
            for a, v, p in moved
        ]
        return out


class NoChanges(Changes):
    """Nobody listens: gather nothing, read nothing."""

    def __init__(self) -> None:
        pass

    def watch(self, conn: Connection, collection_id: int) -> None:
        pass

    def committed(self, version_id: int) -> None:
        pass

    def deleted(self, version_id: int) -> None:
        pass

    def edited(self, version_id: int, fields: tuple[str, ...]) -> None:
        pass

    def events(self, conn: Connection) -> list[Event]:
        return []


def track(listeners: Listeners, *, run: str | None = None) -> Changes:
    """A gatherer for one write transaction: a real one only if anyone listens. Call it
    before the transaction: the first call loads the plugins, which must not happen while
    the catalog is locked for writing."""
    return Changes(run=run) if listeners.active() else NoChanges()


def _ref(row: Any) -> str:
    return f"{row.project}/{row.collection}:v{row.idx}"
