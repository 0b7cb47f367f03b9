"""Fetching entries from the store into the local cache, verified as they arrive.

Every chunk is checked against its digest as it is read, and the whole file against
the entry's digest before it enters the cache (DESIGN invariant 9).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import blake3

from .cache import Cache
from .errors import IntegrityError
from .layout import object_key
from .manifest import Entry
from .progress import NoProgress, Progress
from .stores import Store


class Downloader:
    def __init__(
        self,
        store: Store,
        cache: Cache,
        *,
        progress: Progress | None = None,
        concurrency: int | None = None,
    ):
        self.store = store
        self.cache = cache
        self.progress = progress or NoProgress()
        self.concurrency = concurrency or store.concurrency

    def ensure(self, entries: Iterable[Entry]) -> dict[str, str]:
        """Make every entry's content present in the cache; return digest -> cache path."""
        wanted: dict[str, Entry] = {}
        for e in entries:
            if e.digest and e.digest not in wanted:
                wanted[e.digest] = e
        missing = [e for d, e in wanted.items() if not self.cache.has(d, e.size)]
        self.progress.start("downloading", sum(e.size for e in missing))
        try:
            with ThreadPoolExecutor(self.concurrency) as pool:
                # small files in parallel; a chunked file fetches its own chunks in parallel
                small = [e for e in missing if not e.chunks]
                list(pool.map(self._fetch_blob, small))
                for e in missing:
                    if e.chunks:
                        self._fetch_chunked(e, pool)
        finally:
            self.progress.finish()
        self.cache.touch(wanted)
        return {d: self.cache.path(d) for d in wanted}

    def _fetch_blob(self, e: Entry) -> None:
        assert e.digest is not None
        data = self._get(e, e.digest)

        def fill(f: IO[bytes]) -> str:
            f.write(data)
            return blake3.blake3(data).hexdigest()

        self.cache.write(e.digest, e.size, fill, label=e.path)
        self.progress.advance(len(data))

    def _fetch_chunked(self, e: Entry, pool: ThreadPoolExecutor) -> None:
        assert e.digest is not None
        window = self.concurrency * 2

        def fill(f: IO[bytes]) -> str:
            whole = blake3.blake3()
            chunks = list(e.chunks)
            # keep at most `window` chunks in flight, written in order
            futures: list[Any] = []
            for i, c in enumerate(chunks):
                futures.append(pool.submit(self._get_chunk, e, c.digest))
                if i >= window:
                    self._write(f, whole, futures.pop(0).result())
            for fut in futures:
                self._write(f, whole, fut.result())
            return whole.hexdigest()

        self.cache.write(e.digest, e.size, fill, label=e.path)

    def _write(self, f: IO[bytes], whole: Any, data: bytes) -> None:
        f.write(data)
        whole.update(data)
        self.progress.advance(len(data))

    def _get_chunk(self, e: Entry, digest: str) -> bytes:
        data = self._get(e, digest)
        if blake3.blake3(data).hexdigest() != digest:
            raise IntegrityError(
                f"{e.path}: chunk {digest} is corrupt in the store; run `cairn verify`"
            )
        return data

    def _get(self, e: Entry, digest: str) -> bytes:
        try:
            return self.store.get(object_key(digest))
        except FileNotFoundError:
            raise IntegrityError(
                f"{e.path}: object {digest} is missing from the store; run `cairn verify`"
            ) from None
