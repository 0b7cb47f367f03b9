"""The local download cache: one verified, read-only file per content digest.

Every version shares it, so a file common to many versions is fetched once; checkouts
copy (or clone) from it, and hardlink only when asked (cairn.checkout). An index records each
file's size, mtime and last use: a cache file whose stamp changed is re-verified before
it is trusted, and `cleanup` evicts the least recently used first.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import blake3

from ..foundation.chunking import digest_file
from ..foundation.errors import IntegrityError
from ..foundation.files import atomic_file, use_wal
from . import blocks

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class CleanupReport:
    files_removed: int
    bytes_freed: int
    bytes_kept: int
    indexes_removed: int = 0  # block indexes of cairn:// reads (cairn.blocks)


class Cache:
    def __init__(self, root: str):
        self.root = os.path.abspath(os.path.expanduser(root))
        os.makedirs(os.path.join(self.root, "files"), exist_ok=True)
        self._db = sqlite3.connect(
            os.path.join(self.root, "index.db"), timeout=60, check_same_thread=False
        )
        use_wal(self._db)
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS files (digest TEXT PRIMARY KEY, size INTEGER, "
            "mtime_ns INTEGER, last_used REAL)"
        )
        self._lock = threading.Lock()
        self._files = os.path.join(self.root, "files", "")
        self._folders: set[str] = set()  # files/xx/ folders known to exist
        self._tmp = f".tmp-{secrets.token_hex(4)}{os.getpid():x}-"
        self._count = itertools.count()

    def path(self, digest: str) -> str:
        # joined by hand: a get of 100,000 files asks this twice per file
        return f"{self._files}{digest[:2]}{os.sep}{digest[2:]}"

    def has(self, digest: str, size: int) -> bool:
        """True when a trusted copy of `digest` is cached (re-verified if its stamp moved)."""
        path = self.path(digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns FROM files WHERE digest = ?", (digest,)
            ).fetchone()
        if row == (size, st.st_mtime_ns) and st.st_size == size:
            return True
        # unknown or changed since cached: trust it only if it still hashes right
        if st.st_size == size and digest_file(path) == digest:
            self._record(digest, size, st.st_mtime_ns)
            return True
        with contextlib.suppress(OSError):
            os.unlink(path)
        return False

    def present(self, wanted: Mapping[str, int]) -> set[str]:
        """Which of `wanted` (digest -> size) `has` would say are cached: the index read
        once for all of them, each file's stamp compared; a file whose stamp moved is
        re-verified as `has` does."""
        digests = json.dumps(list(wanted))
        with self._lock:
            # one query, the digests as one JSON parameter (no limit on how many)
            rows: dict[str, tuple[int, int]] = {
                d: (size, mtime)
                for d, size, mtime in self._db.execute(
                    "SELECT f.digest, f.size, f.mtime_ns FROM json_each(?) AS w "
                    "JOIN files AS f ON f.digest = w.value",
                    (digests,),
                )
            }
        out: set[str] = set()
        for d, size in wanted.items():
            try:
                st = os.stat(self.path(d))
            except FileNotFoundError:
                continue
            # a file whose stamp moved since it was indexed is re-verified (`has`)
            fresh = rows.get(d) == (size, st.st_mtime_ns) and st.st_size == size
            if fresh or self.has(d, size):
                out.add(d)
        return out

    def add_many(self, blobs: Sequence[tuple[str, bytes | memoryview, str]]) -> None:
        """Cache small files read whole: (digest, bytes, label for an error) each. Every
        one is checked against its digest before it is written (IntegrityError names the
        first that is not, and nothing of it is cached), written under a temporary name and
        renamed, and indexed in one transaction for all."""
        rows = []
        for digest, data, label in blobs:
            got = blake3.blake3(data).hexdigest()
            if got != digest:
                raise IntegrityError(
                    f"{label or digest}: content read back does not match its digest "
                    f"{digest} (got {got}); run `cairn verify`"
                )
            rows.append((digest, len(data), self._put(digest, data), time.time()))
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", rows)

    def _put(self, digest: str, data: bytes | memoryview) -> int:
        """Write one cache file (read-only, renamed into place); returns its mtime_ns."""
        final = self.path(digest)
        folder = os.path.dirname(final)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        tmp = os.path.join(folder, f"{self._tmp}{next(self._count):x}")
        fd = os.open(tmp, _NEW, 0o444)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                mtime = os.fstat(fd).st_mtime_ns
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return mtime

    def write(
        self, digest: str, size: int, fill: Callable[[IO[bytes]], str], *, label: str = ""
    ) -> str:
        """Create the cache file for `digest` from `fill(fileobj) -> digest written`.

        The bytes are verified before the file becomes visible; a mismatch raises
        IntegrityError and leaves nothing behind.
        """
        final = self.path(digest)
        with atomic_file(final) as f:
            got = fill(f)
            if got != digest:
                raise IntegrityError(
                    f"{label or digest}: content read back does not match its digest "
                    f"{digest} (got {got}); run `cairn verify`"
                )
        self._record(digest, size, os.stat(final).st_mtime_ns)
        return final

    def touch(self, digests: Iterable[str]) -> None:
        # one statement, the digests as one JSON parameter (as `present` reads them)
        wanted = json.dumps(list(digests))
        with self._lock, self._db:
            self._db.execute(
                "UPDATE files SET last_used = ? WHERE digest IN (SELECT value FROM json_each(?))",
                (time.time(), wanted),
            )

    def _record(self, digest: str, size: int, mtime_ns: int) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                (digest, size, mtime_ns, time.time()),
            )

    def scrub(self, digests: Iterable[str] | None = None) -> tuple[int, list[str]]:
        """Re-hash cached files (every one, or those of `digests`, each once, read as they
        come) and drop each that no longer matches its digest; returns (files checked,
        digests dropped).

        A checkout hardlinked to the cache that is made writable and edited changes the
        cached bytes: dropping the cache's name for them (the checkout keeps its file)
        means no later download hands them out.
        """
        wanted: Iterable[str]
        if digests is None:  # a folder of the cache listed at a time
            wanted = (
                name + rest
                for name in sorted(_listdir(os.path.join(self.root, "files")))
                if len(name) == 2
                for rest in sorted(_listdir(os.path.join(self.root, "files", name)))
                if not rest.startswith(".tmp-")
            )
        else:
            wanted = digests
        checked, dropped = 0, []
        for digest in wanted:
            path = self.path(digest)
            try:
                got = digest_file(path)
            except FileNotFoundError:
                continue
            checked += 1
            if got != digest:
                dropped.append(digest)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        if dropped:
            with self._lock, self._db:
                self._db.executemany("DELETE FROM files WHERE digest = ?", [(d,) for d in dropped])
        return checked, dropped

    def size(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM files").fetchone()[0])

    def cleanup(self, max_bytes: int) -> CleanupReport:
        """Evict least recently used files, and block indexes (`blocks/`, kept beside the
        files by cairn:// reads: cairn.blocks), until together they hold at most
        `max_bytes`."""
        blocks.settle()  # indexes this process is still writing count too
        with self._lock:
            rows = self._db.execute("SELECT digest, size, last_used FROM files").fetchall()
        indexes = blocks.stored(os.path.join(self.root, "blocks"))
        entries = [(used or 0.0, size, digest) for digest, size, used in rows]
        entries += [(index.last_used, index.size, index) for index in indexes]
        entries.sort(key=lambda e: e[0], reverse=True)
        kept, doomed, unindexed = 0, [], []
        for _, size, what in entries:
            if kept + size <= max_bytes:
                kept += size
            elif isinstance(what, str):
                doomed.append((what, size))
            else:
                unindexed.append(what)
        for digest, _ in doomed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(digest))
        with self._lock, self._db:
            self._db.executemany("DELETE FROM files WHERE digest = ?", [(d,) for d, _ in doomed])
        blocks.remove(unindexed)
        freed = sum(s for _, s in doomed) + sum(index.size for index in unindexed)
        return CleanupReport(len(doomed), freed, kept, len(unindexed))

    def close(self) -> None:
        self._db.close()


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
