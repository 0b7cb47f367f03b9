"""Reading entries by byte range: whole store objects fetched in one batch, verified
against their digest, and kept in a bounded in-memory cache.

Engines such as DuckDB and pyarrow read a Parquet file as many small ranges (footer,
then column chunks); each maps onto the store objects (whole file below the chunking
threshold, else content-defined chunks) that hold it. Keeping verified objects in
memory makes the next range of the same object a slice, with no store round trip, no
re-hash and no catalog query: that is the read-ahead.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import blake3
from fsspec.spec import AbstractBufferedFile

from ..errors import IntegrityError
from ..manifest import Entry

if TYPE_CHECKING:
    from ..catalog.packs import Member
    from ..objects import Objects


class ObjectCache:
    """Verified store objects by digest, least recently used dropped past `max_bytes`."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, bytes] = OrderedDict()
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

    def get(self, digest: str) -> bytes | None:
        with self._lock:
            data = self._data.get(digest)
            if data is not None:
                self._data.move_to_end(digest)
            return data

    def put(self, digest: str, data: bytes) -> None:
        with self._lock:
            self.fetched += len(data)
            if len(data) > self.max_bytes or digest in self._data:
                return
            self._data[digest] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, old = self._data.popitem(last=False)
                self._bytes -= len(old)


class EntryRanges:
    """Byte ranges of one stored entry, from `cache` or fetched (all missing objects of
    a range in one batch, which the store runs concurrently)."""

    def __init__(
        self,
        objects: Objects,
        entry: Entry,
        *,
        namespace: str,
        cache: ObjectCache,
        where: dict[str, Member] | None,
    ):
        self.objects, self.entry, self.namespace, self.cache = objects, entry, namespace, cache
        self.where = where
        sizes = [c.size for c in entry.chunks] if entry.chunks else [entry.size]
        self.digests: list[str] = (
            [c.digest for c in entry.chunks] if entry.chunks else [entry.digest or ""]
        )
        self.starts: list[int] = []
        at = 0
        for n in sizes:
            self.starts.append(at)
            at += n

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the entry, clipped to its size."""
        end = min(end, self.entry.size)
        if start >= end:
            return b""
        first = bisect.bisect_right(self.starts, start) - 1
        last = bisect.bisect_right(self.starts, end - 1) - 1
        pieces = self._objects(range(first, last + 1))
        base = self.starts[first]
        if len(pieces) == 1:
            return pieces[0][start - base : end - base]
        # one copy: the slices of each object go straight into the result
        views = [memoryview(p) for p in pieces]
        views[0] = views[0][start - base :]
        views[-1] = views[-1][: end - self.starts[last]]
        return b"".join(views)

    def _objects(self, indices: range) -> list[bytes]:
        found = {i: self.cache.get(self.digests[i]) for i in indices}
        missing = [self.digests[i] for i, d in found.items() if d is None]
        if missing:
            locks = self.cache.fetching(missing)
            for lock in locks:
                lock.acquire()
            try:
                got = self._fetch([d for d in missing if self.cache.get(d) is None])
            finally:
                for lock in reversed(locks):
                    lock.release()
                self.cache.fetched_all(missing)
            for i, d in found.items():
                if d is None:
                    digest = self.digests[i]
                    found[i] = got.get(digest) or self.cache.get(digest)
        return [found[i] or b"" for i in indices]

    def _fetch(self, digests: list[str]) -> dict[str, bytes]:
        """Fetch objects in one batch and verify each against its digest."""
        if not digests:
            return {}
        got = self.objects.get_many(self.namespace, digests, where=self.where)
        out: dict[str, bytes] = {}
        for d in digests:
            data = got.ok.get(d)
            if data is None:
                raise IntegrityError(
                    f"{self.entry.path}: object {d} is missing from the store"
                ) from got.failed.get(d)
            if blake3.blake3(data).hexdigest() != d:
                raise IntegrityError(f"{self.entry.path}: object {d} is corrupt in the store")
            out[d] = bytes(data)
            self.cache.put(d, out[d])
        return out


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
