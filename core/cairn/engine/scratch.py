"""Scratch SQLite databases in the cache: the sets of a run too large to hold in memory
(the objects `verify` must read, the objects `gc` must keep), one file per run, removed
when the run ends; and gc's record on its way to the store (`.tmp-gc-*.json.gz`). A run
killed before it could remove its file leaves it behind; the next run of either kind
removes those over an hour old (a younger one may be another run's, still going)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator

#: the kinds of scratch database, each named `.tmp-<kind>-<random>.db` in the cache
KINDS = ("verify", "gc")
_STALE_S = 3600  # a scratch database this old is a killed run's
#: digests asked about in one statement (well under SQLite's variable limit)
_ASKED = 500
#: digests a DigestSet holds in memory (about 30 MB) before it moves to a database
_IN_MEMORY = 200_000


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
            self.db.executescript(f"PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; {schema}")
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
    """A set of (namespace, digest), added and asked about a batch at a time. Held in
    memory while it is small (a set is ~50 times faster than a database to fill and
    ask); past `in_memory` digests it moves to a scratch database in `folder` and stays
    there, so its memory stays flat however many are added. What gc must keep."""

    def __init__(
        self, folder: str, kind: str, *, in_memory: int | None = None, batch: int = 8192
    ) -> None:
        self._folder, self._kind, self._batch = folder, kind, batch
        self._limit = _IN_MEMORY if in_memory is None else in_memory
        self._memory: defaultdict[str, set[str]] | None = defaultdict(set)
        self._held = 0
        self._scratch: Scratch | None = None
        self._pending: list[tuple[str, str]] = []
        sweep(folder)

    @property
    def spilled(self) -> bool:
        """Whether the set has moved to its scratch database."""
        return self._scratch is not None

    def add(self, namespace: str, digests: Iterable[str]) -> None:
        if self._memory is not None:
            held = self._memory[namespace]
            before = len(held)
            held.update(digests)
            self._held += len(held) - before
            if self._held > self._limit:
                self._spill()
            return
        self._pending += ((namespace, d) for d in digests)
        if len(self._pending) >= self._batch:
            self._flush()

    def _spill(self) -> None:
        assert self._memory is not None
        self._scratch = Scratch(
            self._folder,
            self._kind,
            "CREATE TABLE digests (ns TEXT, digest TEXT, PRIMARY KEY (ns, digest)) WITHOUT ROWID;",
        )
        memory, self._memory = self._memory, None
        for namespace in list(memory):
            held = memory.pop(namespace)
            while held:
                self._pending = [
                    (namespace, held.pop()) for _ in range(min(len(held), self._batch))
                ]
                self._flush()

    def _flush(self) -> None:
        if self._pending and self._scratch is not None:
            self._pending.sort()  # fewer pages touched per batch
            self._scratch.db.executemany(
                "INSERT OR IGNORE INTO digests (ns, digest) VALUES (?, ?)", self._pending
            )
            self._pending = []

    def among(self, namespace: str, digests: Iterable[str]) -> set[str]:
        """Those of `digests` in the set under `namespace`."""
        if self._memory is not None:
            held = self._memory.get(namespace)
            return set(digests) & held if held else set()
        assert self._scratch is not None
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
            found.update(d for (d,) in rows)
        return found

    def __len__(self) -> int:
        if self._memory is not None:
            return self._held
        assert self._scratch is not None
        self._flush()
        return int(self._scratch.db.execute("SELECT count(*) FROM digests").fetchone()[0])

    def close(self) -> None:
        if self._scratch is not None:
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
        if name.startswith(prefixes) and name.endswith((".db", ".json.gz")):
            yield os.path.join(folder, name)
