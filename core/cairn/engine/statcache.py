"""A per-machine cache of file digests keyed by (path, inode, size, mtime, ctime).

Lets an unchanged local file be logged again without reading it, as DVC does. Its
database also holds where the versions logged from here keep their objects
(`placecache.py`), so an unchanged re-log does not search the pack index either.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable

from ..foundation.files import use_wal
from ..foundation.manifest import Chunk
from .placecache import PlaceCache

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT NOT NULL, params TEXT NOT NULL, ino INTEGER, size INTEGER,
    mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT, chunks TEXT,
    PRIMARY KEY (path, params)
)
"""

Stamp = tuple[int, int, int, int]
Known = tuple[str, tuple[Chunk, ...]]


def stamp(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class StatCache:
    def __init__(self, path: str, params_key: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False)
        use_wal(self._db)
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(_SCHEMA)
        self._params = params_key
        self._lock = threading.Lock()
        #: where the objects of versions logged or checked from here are (placecache.py)
        self.places = PlaceCache(self._db, self._lock)

    def lookup(self, files: dict[str, Stamp]) -> dict[str, Known]:
        """Digests of the files (absolute path -> stamp) whose stamp is unchanged."""
        found: dict[str, Known] = {}
        paths = list(files)
        with self._lock:
            for i in range(0, len(paths), 500):
                batch = paths[i : i + 500]
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    f"SELECT path, ino, size, mtime_ns, ctime_ns, digest, chunks FROM files "
                    f"WHERE params = ? AND path IN ({marks})",
                    [self._params, *batch],
                )
                for path, ino, size, mtime, ctime, dig, chunks in rows:
                    if files[path] == (ino, size, mtime, ctime):
                        parsed = (
                            tuple(Chunk(d, s) for d, s in json.loads(chunks))
                            if chunks != "[]"
                            else ()
                        )
                        found[path] = (dig, parsed)
        return found

    def store(self, items: Iterable[tuple[str, Stamp, str, tuple[Chunk, ...]]]) -> None:
        rows = [
            (path, self._params, *st, dig, json.dumps([[c.digest, c.size] for c in chunks]))
            for path, st, dig, chunks in items
        ]
        if not rows:
            return
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)", rows)

    def files_with(self, digest: str) -> list[tuple[str, int, int]]:
        """Files logged from this machine that held object `digest` when they were logged
        (whole, or as one of their chunks): (path, start, size) of its bytes in each. For
        `cairn verify --repair`, which checks the bytes before it trusts them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path, size, digest, chunks FROM files WHERE params = ? AND "
                "(digest = ? OR instr(chunks, ?) > 0)",
                (self._params, digest, digest),
            ).fetchall()
        out = []
        for path, size, whole, chunks in rows:
            if whole == digest:
                out.append((path, 0, size))
                continue
            at = 0
            for d, n in json.loads(chunks):
                if d == digest:
                    out.append((path, at, n))
                    break
                at += n
        return out

    def close(self) -> None:
        self._db.close()
