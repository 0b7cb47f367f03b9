"""Scratch SQLite databases in the cache: the sets of a run too large to hold in memory
(the objects `verify` must read, the objects `gc` must keep), one file per run, removed
when the run ends. A run killed before it could remove its file leaves it behind; the
next run of either kind removes those over an hour old (a younger one may be another
run's, still going)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator

#: the kinds of scratch database, each named `.tmp-<kind>-<random>.db` in the cache
KINDS = ("verify", "gc")
_STALE_S = 3600  # a scratch database this old is a killed run's
#: page cache of one scratch database: its memory does not grow with its rows
_CACHE_KIB = 16 * 1024
#: digests asked about in one statement (well under SQLite's variable limit)
_ASKED = 500


class Scratch:
    """One scratch database in `folder`, with the tables of `schema`; a context manager
    that removes the file on exit. Writes are neither journaled nor synced: the file
    never outlives its run."""

    def __init__(self, folder: str, kind: str, schema: str) -> None:
        sweep(folder)
        fd, self.path = tempfile.mkstemp(prefix=f".tmp-{kind}-", suffix=".db", dir=folder)
        os.close(fd)
        try:
            self.db = sqlite3.connect(self.path)
            self.db.executescript(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                f"PRAGMA cache_size = -{_CACHE_KIB}; {schema}"
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(AttributeError):
            self.db.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DigestSet:
    """A set of (namespace, digest) kept in a scratch database: added a batch at a time,
    asked about a batch at a time. What gc keeps when a million files are live."""

    def __init__(self, folder: str, kind: str, *, batch: int = 8192) -> None:
        self._scratch = Scratch(
            folder,
            kind,
            "CREATE TABLE digests (ns TEXT, digest TEXT, PRIMARY KEY (ns, digest)) WITHOUT ROWID;",
        )
        self._batch = batch
        self._pending: list[tuple[str, str]] = []

    def add(self, namespace: str, digests: Iterable[str]) -> None:
        self._pending += ((namespace, d) for d in digests)
        if len(self._pending) >= self._batch:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._scratch.db.executemany(
                "INSERT OR IGNORE INTO digests (ns, digest) VALUES (?, ?)", self._pending
            )
            self._pending = []

    def among(self, namespace: str, digests: Iterable[str]) -> set[str]:
        """Those of `digests` in the set under `namespace`."""
        self._flush()
        asked = list(dict.fromkeys(digests))
        found: set[str] = set()
        for i in range(0, len(asked), _ASKED):
            part = asked[i : i + _ASKED]
            rows = self._scratch.db.execute(
                "SELECT digest FROM digests WHERE ns = ? AND digest IN"
                f" ({', '.join('?' * len(part))})",
                (namespace, *part),
            )
            found.update(str(d) for (d,) in rows)
        return found

    def __len__(self) -> int:
        self._flush()
        return int(self._scratch.db.execute("SELECT count(*) FROM digests").fetchone()[0])

    def close(self) -> None:
        self._scratch.close()

    def __enter__(self) -> DigestSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep(folder: str) -> None:
    """Remove the scratch databases of runs killed over an hour ago."""
    stale = time.time() - _STALE_S
    for path in _scratch_files(folder):
        with contextlib.suppress(OSError):
            if os.stat(path, follow_symlinks=False).st_mtime < stale:
                os.unlink(path)


def _scratch_files(folder: str) -> Iterator[str]:
    prefixes = tuple(f".tmp-{kind}-" for kind in KINDS)
    for name in os.listdir(folder):
        if name.startswith(prefixes) and name.endswith(".db"):
            yield os.path.join(folder, name)
