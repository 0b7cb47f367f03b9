"""Content digests (BLAKE3) and content-defined chunking (FastCDC) of files.

A file at or below `threshold` bytes is one object keyed by its digest. A larger one is
cut into chunks whose boundaries depend on content, so an edit in place changes only the
chunks it touches. The file digest is BLAKE3 over the whole content either way, computed
in the same read pass as the chunk digests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import blake3
import pyfastcdc

from .manifest import Chunk


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


class FileHasher:
    """Hashes a whole file while it is cut into chunks, for one read pass."""

    def __init__(self, params: ChunkingParams):
        self.params = params
        self._cdc = pyfastcdc.FastCDC(params.avg, min_size=params.min, max_size=params.max)

    def chunks(self, path: str, whole: blake3.blake3) -> Iterator[tuple[Chunk, bytes]]:
        """Yield (chunk, bytes) in order and feed every byte to `whole`.

        Memory stays flat: one read buffer plus the chunk the caller holds.
        """
        with open(path, "rb", buffering=0) as f:
            for piece in self._cdc.cut_stream(f):
                data = bytes(piece.data)
                whole.update(data)
                yield Chunk(digest(data), len(data)), data
