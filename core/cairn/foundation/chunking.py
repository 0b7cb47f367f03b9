"""Content digests (BLAKE3) and content-defined chunking (FastCDC) of files.

A file at or below `threshold` bytes is one object keyed by its digest. A larger one is
cut into chunks whose boundaries depend on content, so an edit in place changes only the
chunks it touches. The file digest is BLAKE3 over the whole content either way, computed
in the same read pass as the chunk digests.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import blake3
import pyfastcdc

from .errors import CairnError

# a file is read into buffers of this size (or 2 chunks of the largest size, if more)
WINDOW = 32 << 20


@dataclass(frozen=True)
class ChunkingParams:
    """Chunking settings; fixed per repository so every writer cuts files alike."""

    threshold: int = 8 << 20
    avg: int = 1 << 20
    min: int = 256 << 10
    max: int = 4 << 20

    def key(self) -> str:
        return f"fastcdc:{self.threshold}:{self.avg}:{self.min}:{self.max}"

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def digest(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def digest_file(path: str) -> str:
    """The digest of a whole local file, read in blocks."""
    h = blake3.blake3()
    with open(path, "rb") as f:
        while block := f.read(4 << 20):
            h.update(block)
    return h.hexdigest()


class Window:
    """A stretch of a file read into a buffer and cut into whole chunks.

    `cuts` are (start, length) in `view`. Whoever still needs the bytes calls `hold()`
    and later `release()`; the buffer goes back to its pool at the last release, so it
    must not be touched after that.
    """

    def __init__(
        self, offset: int, view: memoryview, cuts: list[tuple[int, int]], free: Callable[[], None]
    ):
        self.offset = offset
        self.view = view
        self.cuts = cuts
        self._free = free
        self._holds = 1
        self._lock = threading.Lock()

    @property
    def length(self) -> int:
        """Bytes covered by the cuts, from the start of the view."""
        start, size = self.cuts[-1]
        return start + size

    def pieces(self) -> list[memoryview]:
        return [self.view[s : s + n] for s, n in self.cuts]

    def hold(self) -> None:
        with self._lock:
            self._holds += 1

    def release(self) -> None:
        with self._lock:
            self._holds -= 1
            last = self._holds == 0
        if last:
            self._free()


class FileChunker:
    """Cuts files into FastCDC chunks, reading each into a few reused buffers.

    Memory is `buffers` windows whatever the file size. The cut points are those of
    FastCDC over the whole file: a chunk is kept from a window only when more bytes could
    not have moved its end (see `_certain`), and the next window starts where the last
    kept chunk ends.
    """

    def __init__(self, params: ChunkingParams, *, buffers: int = 4):
        self.params = params
        self._cdc = pyfastcdc.FastCDC(params.avg, min_size=params.min, max_size=params.max)
        self._size = max(WINDOW, 2 * params.max)
        self._count = buffers
        self._free: queue.SimpleQueue[bytearray] | None = None
        #: buffers handed out in windows and not released yet, and the most ever at
        #: once: the chunker's memory is `peak` buffers (never more than `buffers`)
        self.in_use = 0
        self.peak = 0
        self._lock = threading.Lock()

    def _certain(self, left: int, length: int) -> bool:
        """Whether a chunk cut with `left` bytes left in the window ends where it would in
        the whole file.

        FastCDC reads at most `max` bytes from a chunk's start, position by position, and
        cuts at the first position whose hash matches (or at `max`). With fewer than `max`
        bytes left, a cut found before the window's end is the whole file's cut too; one at
        the end may only be where the data ran out. tests/core/test_chunking.py checks this
        against whole-file cuts with windows of 2 * max.
        """
        return left >= self.params.max or length < left

    def windows(self, f: int, size: int, name: str) -> Iterator[Window]:
        """The windows of the `size` bytes of open file descriptor `f`, in order.

        Waits for a free buffer before reading the next window: callers release windows
        when done with them. A file shorter than `size` raises CairnError naming `name`.
        """
        if self._free is None:
            self._free = queue.SimpleQueue()
            for _ in range(self._count):
                self._free.put(bytearray(self._size))
        free = self._free
        offset = 0
        while offset < size:
            buf = free.get()
            with self._lock:
                self.in_use += 1
                self.peak = max(self.peak, self.in_use)
            want = min(self._size, size - offset)
            view = memoryview(buf)[:want]
            if _read_into(f, view, offset) != want:
                self._give(buf)
                raise CairnError(f"file {name!r} shrank while logging; nothing was logged")
            last = offset + want == size
            cuts = []
            for c in self._cdc.cut_buf(view):
                if not last and not self._certain(want - c.offset, c.length):
                    break
                cuts.append((c.offset, c.length))
            window = Window(offset, view, cuts, functools.partial(self._give, buf))
            offset += window.length
            yield window

    def _give(self, buf: bytearray) -> None:
        """A buffer back to the pool (a window's last release)."""
        assert self._free is not None
        with self._lock:
            self.in_use -= 1
        self._free.put(buf)


def _read_into(f: int, view: memoryview, offset: int) -> int:
    """Fill `view` from file offset `offset`; fewer bytes only at the end of the file."""
    done = 0
    while done < len(view):
        n = os.preadv(f, [view[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done
