"""Block indexes: checking a byte range of a store object without reading all of it.

An object's digest is the BLAKE3 hash of all its bytes, so checking a range against it
needs the whole object (BLAKE3's tree could authenticate a range, but the Python binding
does not expose the inner chaining values a verified-streaming scheme needs). A reader
of one Parquet column wants a few ranges of many objects, so the first time an object
is read it is fetched whole and checked against its digest (DESIGN invariant 9), and
the BLAKE3 hash of each of its BLOCK-byte blocks is recorded: its **block index**.
Later reads fetch only the blocks around the bytes asked for and check each against
the index before returning a byte of it.
The index is worked out on a thread of the process's own (`_Indexer`), so the read that
fetched the object returns after the digest alone; it has the object in memory, and a
later read that needs the index waits for it.

The index is derived from content already verified against its digest, so it depends
on the digest alone (not on the store, namespace or version). It is kept in memory
and in the local cache folder (`<cache_dir>/blocks/<d[:2]>/<d[2:]>`, read-only files
written atomically, each ending with the BLAKE3 of what precedes it), which cairn
trusts as it trusts its download cache: a damaged index file is ignored and rebuilt,
and a block that does not match its index makes the reader check the whole object
against its digest again, so a bad index costs a re-read, never a wrong byte.

The indexes live beside the download cache's files and share its budget: `cairn cache
cleanup SIZE` evicts the least recently used files and indexes alike (an index's last
use is its file's mtime, set when it is written and when a process first loads it), so
`cleanup 0` removes every one (`stored`, `remove`).
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import blake3

from ..foundation.files import atomic_file

#: bytes of objects waiting for their index at most: past it, a reader works the index
#: out on its own thread (the indexing thread is behind, and the bytes wait in memory)
PENDING_MAX = 256 << 20
#: bytes per indexed block: small enough that a projection reads about only the
#: column's bytes, large enough that the index is 0.2% of the object
BLOCK = 16 << 10
_HASH = 32
_MAGIC = b"CAIRNBX1"
_HEAD = struct.Struct(">8sIQ")  # magic, block size, object size
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class BlockIndex:
    """The BLAKE3 hash of each BLOCK-byte block of the object `digest` (`size` bytes)."""

    digest: str
    size: int
    hashes: bytes

    def count(self) -> int:
        return -(-self.size // BLOCK)

    def matches(self, first: int, data: bytes | memoryview) -> bool:
        """True when `data` is blocks `first`, `first + 1`, ... of the object, whole
        (the last one may be the object's short last block)."""
        view = memoryview(data)
        for i, at in enumerate(range(0, len(view), BLOCK), start=first):
            want = self.hashes[i * _HASH : (i + 1) * _HASH]
            if len(want) != _HASH or blake3.blake3(view[at : at + BLOCK]).digest() != want:
                return False
        return True

    def to_bytes(self) -> bytes:
        body = _HEAD.pack(_MAGIC, BLOCK, self.size) + self.hashes
        return body + blake3.blake3(body).digest()

    @classmethod
    def from_bytes(cls, digest: str, data: bytes) -> BlockIndex | None:
        """The index stored in `data`, or None when it is damaged or of another layout."""
        if len(data) < _HEAD.size + _HASH:
            return None
        body, check = data[:-_HASH], data[-_HASH:]
        if blake3.blake3(body).digest() != check:
            return None
        magic, block, size = _HEAD.unpack_from(body)
        hashes = body[_HEAD.size :]
        if magic != _MAGIC or block != BLOCK or len(hashes) != -(-size // BLOCK) * _HASH:
            return None
        return cls(digest, size, hashes)


def index_of(digest: str, data: bytes | memoryview) -> BlockIndex:
    """The block index of an object's bytes, which the caller verified against `digest`."""
    view = memoryview(data)
    hashes = b"".join(
        blake3.blake3(view[at : at + BLOCK]).digest() for at in range(0, len(view), BLOCK)
    )
    return BlockIndex(digest, len(view), hashes)


class BlockIndexes:
    """Block indexes by digest: in memory, and in `folder` when given (shared by every
    process using that cache folder)."""

    def __init__(self, folder: str | None):
        self.folder = folder
        self._known: dict[str, BlockIndex] = {}
        self._lock = threading.Lock()

    def _path(self, digest: str) -> str | None:
        """Where `digest`'s index is kept; None for no folder, or a digest that is not
        64 hex digits (nothing read from a manifest may name a path outside the folder)."""
        if self.folder is None or len(digest) != 64 or not _HEX.issuperset(digest):
            return None
        return os.path.join(self.folder, digest[:2], digest[2:])

    def get(self, digest: str, size: int) -> BlockIndex | None:
        index = self._known.get(digest)  # one dict read: safe without the lock
        if index is None:
            index = _INDEXER.wait(self.folder, digest)
            if index is not None:
                with self._lock:
                    self._known[digest] = index
        if index is not None:
            return index if index.size == size else None
        path = self._path(digest)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                index = BlockIndex.from_bytes(digest, f.read())
        except OSError:
            return None
        if index is None or index.size != size:
            return None
        with contextlib.suppress(OSError):  # its last use, for `cairn cache cleanup`
            os.utime(path)
        with self._lock:
            self._known[digest] = index
        return index

    def record(self, digest: str, data: bytes) -> None:
        """Work out and keep the index of `data`, which the caller checked against
        `digest`, on the process's indexing thread: the read that fetched the object
        whole returns without waiting for it (it has the object in its cache). A later
        `get` of that digest waits for it. An index kept before (one a block did not
        match) is dropped at once."""
        with self._lock:
            self._known.pop(digest, None)
        _INDEXER.submit(self, digest, data)

    def put(self, index: BlockIndex) -> None:
        with self._lock:
            self._known[index.digest] = index
        path = self._path(index.digest)
        if path is None:
            return
        # only a speed-up: a cache folder that cannot be written costs whole-object reads
        with contextlib.suppress(OSError), atomic_file(path) as f:
            f.write(index.to_bytes())


class _Indexer:
    """The thread of this process that works out block indexes (a ranged read's first
    fetch of an object pays for its digest only), with the indexes it is working on by
    (folder, digest). Work it is given when PENDING_MAX bytes already wait, or once the
    interpreter is exiting (a read in an `atexit` handler), is done on the caller's
    thread. Its work is done before the interpreter exits (the pool's
    threads are joined then); a forked child starts with none of its parent's."""

    def __init__(self) -> None:
        self._forked()

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[tuple[str | None, str], Future[BlockIndex]] = {}
        self._bytes = 0

    def submit(self, indexes: BlockIndexes, digest: str, data: bytes) -> None:
        key = (indexes.folder, digest)
        with self._lock:
            if key in self._pending:
                return
            if self._bytes + len(data) <= PENDING_MAX:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="cairn-blocks")
                try:
                    self._pending[key] = self._pool.submit(self._work, indexes, key, data)
                except RuntimeError:  # the interpreter is exiting: it starts no thread
                    pass
                else:
                    self._bytes += len(data)
                    return
        indexes.put(index_of(digest, data))

    def _work(self, indexes: BlockIndexes, key: tuple[str | None, str], data: bytes) -> BlockIndex:
        try:
            index = index_of(key[1], data)
            indexes.put(index)
            return index
        finally:
            with self._lock:
                del self._pending[key]
                self._bytes -= len(data)

    def wait(self, folder: str | None, digest: str) -> BlockIndex | None:
        """The index of `digest` for `folder` once this thread has it; None when it is
        not working on one."""
        future = self._pending.get((folder, digest))  # one dict read: safe unlocked
        return None if future is None else future.result()

    def settle(self) -> None:
        """Wait for every index given so far."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            future.result()


_INDEXER = _Indexer()
#: wait until every index this process was given is written (tests, benchmarks)
settle = _INDEXER.settle
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_INDEXER._forked)


@dataclass(frozen=True)
class StoredIndex:
    """An index file in a cache folder: where it is, its size, and when it was last used
    (its mtime)."""

    path: str
    size: int
    last_used: float


def stored(folder: str) -> list[StoredIndex]:
    """The index files kept in `folder` (`<folder>/<d[:2]>/<d[2:]>`), and temporary files
    a writer that died left there over an hour ago (as never used); other names are not
    cairn's and are left alone."""
    out: list[StoredIndex] = []
    stale = time.time() - 3600
    for head in _listdir(folder):
        if len(head) != 2 or not _HEX.issuperset(head):
            continue
        for name in _listdir(os.path.join(folder, head)):
            path = os.path.join(folder, head, name)
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            if len(name) == 62 and _HEX.issuperset(name):
                out.append(StoredIndex(path, st.st_size, st.st_mtime))
            elif name.startswith(".tmp-") and st.st_mtime < stale:
                out.append(StoredIndex(path, st.st_size, 0.0))
    return out


def remove(doomed: Iterable[StoredIndex]) -> None:
    """Delete these index files (`stored` found them) and the folders they leave empty."""
    folders = set()
    for index in doomed:
        folders.add(os.path.dirname(index.path))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(index.path)
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty: it still holds others
            os.rmdir(folder)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
