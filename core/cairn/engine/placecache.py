"""Where a committed version's objects are, remembered per machine (in statcache.db).

An unchanged re-log must check that the version it returns is still readable: every
loose object and every pack holding its objects still stored, none reported damaged.
Which packs hold 10,000 small files takes the catalog 10,000 index searches to say; this
cache remembers the answer per (store, namespace, manifest), together with the pack
index epoch it was read at (`cairn.catalog.packs.epoch`). While that epoch stands, no
indexed object of the namespace has changed place, so the answer stands too, and the
re-log asks only the store (one key per pack, one per loose object) and the damaged list.
A log remembers where the version it committed keeps its objects, so even the first
re-log after it searches nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass

_SCHEMA = """
CREATE TABLE IF NOT EXISTS places (
    store TEXT NOT NULL, namespace TEXT NOT NULL, manifest TEXT NOT NULL,
    epoch INTEGER NOT NULL, packs TEXT NOT NULL, loose TEXT NOT NULL,
    PRIMARY KEY (store, namespace, manifest)
)
"""


@dataclass(frozen=True)
class Layout:
    """Where a version's objects are: the packs holding the packed ones, the loose ones,
    as the pack index said at `epoch`."""

    epoch: int
    packs: frozenset[str]
    loose: frozenset[str]


class PlaceCache:
    """A table of the stat cache's database (one file, one connection per repository)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self._db = db
        self._lock = lock
        with self._lock:
            self._db.execute(_SCHEMA)

    def get(self, store: str, namespace: str, manifest: str) -> Layout | None:
        with self._lock:
            row = self._db.execute(
                "SELECT epoch, packs, loose FROM places "
                "WHERE store = ? AND namespace = ? AND manifest = ?",
                (store, namespace, manifest),
            ).fetchone()
        if row is None:
            return None
        return Layout(row[0], frozenset(json.loads(row[1])), frozenset(json.loads(row[2])))

    def put(self, store: str, namespace: str, manifest: str, layout: Layout) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO places VALUES (?, ?, ?, ?, ?, ?)",
                (
                    store,
                    namespace,
                    manifest,
                    layout.epoch,
                    json.dumps(sorted(layout.packs)),
                    json.dumps(sorted(layout.loose)),
                ),
            )


__all__ = ["Layout", "PlaceCache"]
