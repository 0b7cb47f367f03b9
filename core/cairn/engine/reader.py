"""Reading one entry as a seekable stream, straight from the store, verified per chunk."""

from __future__ import annotations

import bisect
import io
from abc import abstractmethod

import blake3

from ..catalog.packs import Member
from ..foundation.errors import IntegrityError
from ..foundation.manifest import Entry
from .objects import Objects


class SeekableReader(io.RawIOBase):
    """A read-only, seekable binary stream of known size; subclasses fill `readinto`
    from `self._pos` and advance it."""

    def __init__(self) -> None:
        super().__init__()
        self._pos = 0

    @abstractmethod
    def size(self) -> int:
        """Bytes in the stream (asked only when seeking from the end or reading)."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            base = self.size()
        else:
            base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos}[whence]
        self._pos = max(0, base + offset)
        return self._pos


class EntryReader(SeekableReader):
    """A read-only binary stream over a stored entry (whole object or chunks).

    Each object is fetched whole and checked against its digest before any byte of it
    is returned, so a stream never yields unverified bytes.
    """

    def __init__(self, objects: Objects, entry: Entry, *, namespace: str):
        super().__init__()
        self.objects = objects
        self.entry = entry
        self.namespace = namespace
        sizes = [c.size for c in entry.chunks] if entry.chunks else [entry.size]
        self._digests = [c.digest for c in entry.chunks] if entry.chunks else [entry.digest]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._current: tuple[int, bytes] | None = None
        self._where: dict[str, Member] | None = None  # packed objects, located at first read

    def size(self) -> int:
        return self.entry.size

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self.entry.size:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        data = self._object(i)
        start = self._pos - self._starts[i]
        n = min(len(buffer), len(data) - start)
        buffer[:n] = data[start : start + n]
        self._pos += n
        return n

    def _object(self, i: int) -> bytes:
        if self._current is None or self._current[0] != i:
            d = self._digests[i]
            assert d is not None
            if self._where is None:
                self._where = self.objects.locate(self.namespace, filter(None, self._digests))
            try:
                data = self.objects.get(self.namespace, d, where=self._where)
            except FileNotFoundError:
                raise IntegrityError(
                    f"{self.entry.path}: object {d} is missing from the store"
                ) from None
            if blake3.blake3(data).hexdigest() != d:
                raise IntegrityError(f"{self.entry.path}: object {d} is corrupt in the store")
            self._current = (i, data)
        return self._current[1]
