"""Fetching entries from the store into the local cache, verified as they arrive.

Every chunk is checked against its digest as it is read, and the whole file against
the entry's digest before it enters the cache (DESIGN invariant 9). Small files are
fetched by slices, one batched store call each, from the store namespace of the
version being read; packed ones in pack order, so a slice is one ranged read of a
pack. Reference entries come from their source (cairn.references),
checked against their pin; one without a digest is not content-addressed and lands
under `references/` in the cache folder instead.

The cache is keyed by content digest alone, whatever namespace the bytes came from:
they are verified, and the cache belongs to one user ($CAIRN_HOME), who read them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import blake3

from ..catalog.packs import Member
from ..foundation.errors import IntegrityError
from ..foundation.manifest import Entry
from . import references
from .cache import Cache
from .objects import Objects
from .progress import NoProgress, Progress

_SLICE_OBJECTS = 64
# packed objects of one slice are one ranged read, however many they are
_SLICE_PACKED = 1024
_SLICE_BYTES = 16 << 20


def cache_key(entry: Entry) -> str:
    """The key of an entry in what `Downloader.ensure` returns: its digest, else its URI."""
    return entry.digest or entry.ref or ""


class Downloader:
    def __init__(
        self,
        objects: Objects,
        cache: Cache,
        *,
        namespace: str,
        progress: Progress | None = None,
        concurrency: int | None = None,
        sources: references.Sources | None = None,
    ):
        self.objects = objects
        self.cache = cache
        self.namespace = namespace
        self.progress = progress or NoProgress()
        self.concurrency = concurrency or objects.store.concurrency
        self._where: dict[str, Member] = {}
        self.sources = sources or references.Sources()

    def ensure(self, entries: Iterable[Entry]) -> dict[str, str]:
        """Make every entry's content present locally; return cache_key(entry) -> path."""
        wanted: dict[str, Entry] = {}
        refs: dict[str, Entry] = {}
        for e in entries:
            if e.is_reference:
                refs.setdefault(cache_key(e), e)
            elif e.digest and e.digest not in wanted:
                wanted[e.digest] = e
        cached = self.cache.present({d: e.size for d, e in wanted.items()})
        missing = [e for d, e in wanted.items() if d not in cached]
        self.progress.start("downloading", sum(e.size for e in [*missing, *refs.values()]))
        try:
            self._where = self.objects.locate(
                self.namespace, [d for e in missing for d in e.objects()]
            )
            whole = [e for e in missing if not e.chunks]
            # packed ones in pack order: each slice is one ranged read of a pack
            packed = sorted((e for e in whole if e.digest in self._where), key=self._place)
            loose = [e for e in whole if e.digest not in self._where]
            slices = _slices(packed, _SLICE_PACKED) + _slices(loose, _SLICE_OBJECTS)
            with ThreadPoolExecutor(self.concurrency) as pool:
                # small files by slices in parallel; a chunked file fetches its chunks in parallel
                list(pool.map(self._fetch_blobs, slices))
                for e in missing:
                    if e.chunks:
                        self._fetch_chunked(e, pool)
                ref_paths = dict(
                    zip(refs, list(pool.map(self._fetch_reference, refs.values())), strict=True)
                )
        finally:
            self.progress.finish()
        self.cache.touch([*wanted, *(e.digest for e in refs.values() if e.digest)])
        return {**{d: self.cache.path(d) for d in wanted}, **ref_paths}

    def _place(self, e: Entry) -> tuple[str, int]:
        m = self._where[e.digest or ""]
        return m.pack, m.start

    def _fetch_blobs(self, entries: list[Entry]) -> None:
        keys = {e.digest or "": e for e in entries}
        got = self.objects.get_many(self.namespace, keys, where=self._where)
        for key, exc in got.failed.items():
            e = keys[key]
            if isinstance(exc, FileNotFoundError):
                raise IntegrityError(
                    f"{e.path}: object {e.digest} is missing from the store; run `cairn verify`"
                )
            raise exc
        # checked against their digests, written and indexed together
        self.cache.add_many([(key, data, keys[key].path) for key, data in got.ok.items()])
        self.progress.advance(sum(len(data) for data in got.ok.values()))

    def _fetch_reference(self, e: Entry) -> str:
        """Fetch a reference from its source, checked against its pin; return its path."""
        if e.digest:
            # content-addressed: a cached copy serves while the source still matches
            if self.cache.has(e.digest, e.size):
                problem = references.check(e, sources=self.sources)
                if problem is None:
                    self.progress.advance(e.size)
                    return self.cache.path(e.digest)
            return self.cache.write(
                e.digest,
                e.size,
                lambda f: references.fetch(
                    e, f, sources=self.sources, progress=self.progress.advance
                ),
                label=e.path,
            )
        # not content-addressed: fetched every time, into a file of its own
        name = blake3.blake3(json.dumps([e.ref, dict(e.pin)], sort_keys=True).encode()).hexdigest()
        path = os.path.join(self.cache.root, "references", name[:2], name[2:])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                references.fetch(e, f, sources=self.sources, progress=self.progress.advance)
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)  # rename last: never a partial file under the final name
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

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
            return self.objects.get(self.namespace, digest, where=self._where)
        except FileNotFoundError:
            raise IntegrityError(
                f"{e.path}: object {digest} is missing from the store; run `cairn verify`"
            ) from None


def _slices(entries: list[Entry], most: int) -> list[list[Entry]]:
    out: list[list[Entry]] = []
    part: list[Entry] = []
    size = 0
    for e in entries:
        part.append(e)
        size += e.size
        if len(part) >= most or size >= _SLICE_BYTES:
            out.append(part)
            part, size = [], 0
    if part:
        out.append(part)
    return out
