"""Reading entries by byte range, every byte checked against its digest first.

Engines such as DuckDB and pyarrow read a Parquet file as many small ranges (footer,
then column chunks); each maps onto the store objects that hold it (the whole file
below the chunking threshold, else content-defined chunks). An object read for the
first time is fetched whole and checked against its digest, which also records its
block index (`blocks`); after that only the blocks around a range are fetched, each
checked against the index, so reading one column of many costs about that column's
bytes. Checked bytes stay in a bounded in-memory cache: the next range of the same
blocks, or the next query over the same files, is a slice of memory with no store
round trip and no re-hash.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import blake3
from fsspec.spec import AbstractBufferedFile

from ..engine.blocks import BLOCK, BlockIndex, BlockIndexes
from ..foundation.errors import IntegrityError
from ..foundation.layout import object_key
from ..foundation.manifest import Entry

if TYPE_CHECKING:
    from ..catalog.packs import Member
    from ..engine.objects import Objects

#: objects up to this size are read and cached whole (a block index would save little)
WHOLE_MAX = 4 * BLOCK


class ObjectCache:
    """Checked bytes by key (an object's digest, or (digest, n) for its block n), least
    recently used dropped past `max_bytes`."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}  # one fetch per object at a time
        #: bytes fetched from the store (what a projection costs; benchmarks read it)
        self.fetched = 0

    def fetching(self, digests: list[str]) -> list[threading.Lock]:
        """Locks of these objects' fetches, in a fixed order (no deadlock): an engine's
        threads asking for one object at once fetch it once."""
        with self._lock:
            return [self._fetching.setdefault(d, threading.Lock()) for d in sorted(set(digests))]

    def fetched_all(self, digests: list[str]) -> None:
        with self._lock:
            for d in digests:
                self._fetching.pop(d, None)

    def count(self, n: int) -> None:
        with self._lock:
            self.fetched += n

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            data = self._data.get(key)
            if data is not None:
                self._data.move_to_end(key)
            return data

    def get_all(self, keys: list[Hashable]) -> list[bytes | None]:
        """`get` of many keys under one lock (a range is many blocks)."""
        with self._lock:
            out = [self._data.get(k) for k in keys]
            for k, data in zip(keys, out, strict=True):
                if data is not None:
                    self._data.move_to_end(k)
            return out

    def put(self, key: Hashable, data: bytes) -> None:
        with self._lock:
            if len(data) > self.max_bytes or key in self._data:
                return
            self._data[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, old = self._data.popitem(last=False)
                self._bytes -= len(old)


class EntryRanges:
    """Byte ranges of one stored entry: from `cache`, else the blocks around them (an
    object with a block index), else whole objects (all missing ones of a range in one
    batch, which the store runs concurrently)."""

    def __init__(
        self,
        objects: Objects,
        entry: Entry,
        *,
        namespace: str,
        cache: ObjectCache,
        where: dict[str, Member] | None,
        indexes: BlockIndexes,
    ):
        self.objects, self.entry, self.namespace, self.cache = objects, entry, namespace, cache
        self.where = where if where is not None else {}
        self.indexes = indexes
        self.sizes = [c.size for c in entry.chunks] if entry.chunks else [entry.size]
        self.digests: list[str] = (
            [c.digest for c in entry.chunks] if entry.chunks else [entry.digest or ""]
        )
        self.starts: list[int] = []
        at = 0
        for n in self.sizes:
            self.starts.append(at)
            at += n

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the entry, clipped to its size."""
        end = min(end, self.entry.size)
        if start >= end:
            return b""
        first = bisect.bisect_right(self.starts, start) - 1
        last = bisect.bisect_right(self.starts, end - 1) - 1
        # (object, start, end) of each object the range covers, within that object
        spans = [
            (i, max(0, start - self.starts[i]), min(self.sizes[i], end - self.starts[i]))
            for i in range(first, last + 1)
        ]
        # small or packed objects are read whole; others read for the first time are
        # fetched whole once to record their block index: each kind in one batch
        whole = [self.digests[i] for i, _, _ in spans if self._whole(i)]
        got = self._wholes(whole) if whole else {}
        new = [
            self.digests[i]
            for i, _, _ in spans
            if not self._whole(i)
            and self.cache.get(self.digests[i]) is None
            and self.indexes.get(self.digests[i], self.sizes[i]) is None
        ]
        if new:
            self._locked_fetch(new, blocks=True)
        pieces: list[bytes | memoryview] = []
        for i, lo, hi in spans:
            if self._whole(i):
                data = got[self.digests[i]]
                pieces.append(data if (lo, hi) == (0, len(data)) else memoryview(data)[lo:hi])
            else:
                pieces.extend(self._range(i, lo, hi))
        if len(pieces) == 1 and isinstance(pieces[0], bytes):
            return pieces[0]
        return b"".join(pieces)

    def _whole(self, i: int) -> bool:
        return self.sizes[i] <= WHOLE_MAX or self.digests[i] in self.where

    # -- whole objects --------------------------------------------------------------------

    def _wholes(self, digests: list[str]) -> dict[str, bytes]:
        """Small or packed objects, whole: cached, else fetched and checked."""
        found = dict(zip(digests, self.cache.get_all(list(digests)), strict=True))
        missing = [d for d, data in found.items() if data is None]
        if missing:
            got = self._locked_fetch(missing, blocks=False)
            for d in missing:
                found[d] = got.get(d) or self.cache.get(d)
            lost = [d for d, data in found.items() if data is None]
            if lost:  # fetched by another thread, and dropped from the cache since
                found.update(self._fetch(lost))
        return {d: data or b"" for d, data in found.items()}

    def _locked_fetch(self, digests: list[str], *, blocks: bool) -> dict[str, bytes]:
        """`_fetch` of those of `digests` no other thread fetched meanwhile."""
        locks = self.cache.fetching(digests)
        for lock in locks:
            lock.acquire()
        try:
            size = dict(zip(self.digests, self.sizes, strict=True))
            if blocks:
                todo = [d for d in digests if self.indexes.get(d, size[d]) is None]
            else:
                todo = [d for d in digests if self.cache.get(d) is None]
            got = self._fetch(todo, blocks=blocks)
        finally:
            for lock in reversed(locks):
                lock.release()
            self.cache.fetched_all(digests)
        return got

    def _fetch(self, digests: list[str], *, blocks: bool = False) -> dict[str, bytes]:
        """Fetch objects in one batch, check each against its digest and keep it; with
        `blocks`, record its block index too."""
        if not digests:
            return {}
        got = self.objects.get_many(self.namespace, digests, where=self.where)
        lost = [d for d in digests if d not in got.ok and d not in self.where]
        moved = self.objects.locate(self.namespace, lost) if lost else {}
        if moved:  # large objects are read loose first: this one is packed after all
            self.where.update(moved)
            again = self.objects.get_many(self.namespace, list(moved), where=self.where)
            got.ok.update(again.ok)
            got.failed.update(again.failed)
        out: dict[str, bytes] = {}
        for d in digests:
            data = got.ok.get(d)
            if data is None:
                raise IntegrityError(
                    f"{self.entry.path}: object {d} is missing from the store"
                ) from got.failed.get(d)
            self.cache.count(len(data))
            if blake3.blake3(data).hexdigest() != d:
                raise IntegrityError(f"{self.entry.path}: object {d} is corrupt in the store")
            out[d] = bytes(data)
            self.cache.put(d, out[d])
            if blocks:
                self.indexes.record(d, out[d])
        return out

    # -- blocks of indexed objects --------------------------------------------------------

    def _keep_blocks(self, digest: str, data: bytes, first: int) -> list[bytes]:
        """`data` (blocks `first`... of object `digest`) as cached blocks."""
        view = memoryview(data)
        out = [bytes(view[at : at + BLOCK]) for at in range(0, len(view), BLOCK)]
        for n, block in enumerate(out, start=first):
            self.cache.put((digest, n), block)
        return out

    def _range(self, i: int, lo: int, hi: int) -> list[bytes | memoryview]:
        """Bytes [lo, hi) of object `i`, from its cached blocks and the missing ones
        fetched (each run of consecutive missing blocks in one ranged read)."""
        d, size = self.digests[i], self.sizes[i]
        whole = self.cache.get(d)
        if whole is not None:  # read whole since it was indexed, and still cached
            return [memoryview(whole)[lo:hi]]
        index = self.indexes.get(d, size)
        b0, b1 = lo // BLOCK, -(-hi // BLOCK)
        blocks = self.cache.get_all([(d, n) for n in range(b0, b1)])
        n = b0
        while n < b1:
            if blocks[n - b0] is not None:
                n += 1
                continue
            m = n
            while m < b1 and blocks[m - b0] is None:
                m += 1
            for k, block in enumerate(self._fetch_blocks(i, index, n, m), start=n):
                blocks[k - b0] = block
            n = m
        pieces: list[bytes | memoryview] = [b for b in blocks if b is not None]
        # the first block from `lo` on, the last one up to `hi` (an object's last block
        # may be short)
        if len(pieces) == 1:
            return [memoryview(pieces[0])[lo - b0 * BLOCK : hi - b0 * BLOCK]]
        pieces[0] = memoryview(pieces[0])[lo - b0 * BLOCK :]
        pieces[-1] = memoryview(pieces[-1])[: hi - (b1 - 1) * BLOCK]
        return pieces

    def _fetch_blocks(self, i: int, index: BlockIndex | None, first: int, end: int) -> list[bytes]:
        """Blocks [first, end) of object `i`, read from the store and checked against its
        block index; a mismatch re-checks the whole object against its digest."""
        d, size = self.digests[i], self.sizes[i]
        key = object_key(d, namespace=self.namespace)
        try:
            data = self.objects.store.get_range(key, first * BLOCK, min(size, end * BLOCK))
        except FileNotFoundError:
            data = None
        want = min(size, end * BLOCK) - first * BLOCK
        if data is not None:
            self.cache.count(len(data))
        if data is not None and len(data) == want and index and index.matches(first, data):
            return self._keep_blocks(d, data, first)
        # missing loose (packed after all?), or not what the index says: read it whole
        # and check it against its digest, which raises if it is corrupt or gone (the
        # index, which describes the logged bytes, stays), else replaces the index
        whole = memoryview(self._fetch([d], blocks=True)[d])
        return [
            bytes(whole[at : at + BLOCK])
            for at in range(first * BLOCK, min(size, end * BLOCK), BLOCK)
        ]


class CairnReadFile(AbstractBufferedFile):
    """A file of a version opened for reading; ranges come from `EntryRanges`, so fsspec's
    own block cache is off (`cache_type="none"`): the object cache is the read-ahead."""

    def __init__(self, fs: Any, path: str, ranges: Any, size: int, **kwargs: Any):
        self._ranges = ranges
        kwargs.setdefault("cache_type", "none")
        super().__init__(fs, path, mode="rb", size=size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        data: bytes = self._ranges.read(start, end)
        return data


class StreamRanges:
    """Byte ranges of a reference entry, read from its source (which pins it) through
    one open stream, seeking as asked."""

    def __init__(self, stream: Any, size: int):
        self._stream, self._size = stream, size
        self._lock = threading.Lock()

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self._size)
        if start >= end:
            return b""
        with self._lock:
            self._stream.seek(start)
            data: bytes = self._stream.read(end - start)
        return data

    def close(self) -> None:
        self._stream.close()
