"""Reading versions' content: manifests from the catalog, files into the local cache or
straight from the store.

The narrow service a version handle (and the `cairn://` filesystem) reads bytes
through, so neither needs `Repository`'s internals. `Repository` builds one and closes
it with itself; the download cache is opened on first use.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from typing import Any

from ..catalog import Catalog, records
from ..foundation.manifest import Entry, Manifest
from ..storage import Store
from .cache import Cache
from .download import Downloader
from .objects import Objects
from .progress import Progress
from .reader import EntryReader
from .references import Sources, open_reference


class Contents:
    """A repository's content, read by digest (manifests) and by entry (files)."""

    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        *,
        cache_dir: str,
        progress: Progress,
        concurrency: int | None,
        sources: Sources,
    ):
        self.catalog = catalog
        #: the store's objects by digest, loose or packed
        self.objects = Objects(store, catalog)
        #: the local download cache's folder (verified files, block indexes)
        self.cache_dir = cache_dir
        self.progress = progress
        self.concurrency = concurrency
        #: where reference entries are read from
        self.sources = sources
        self._cache: Cache | None = None
        self._lock = threading.Lock()

    @property
    def cache(self) -> Cache:
        """The local download cache, opened on first use."""
        with self._lock:
            if self._cache is None:
                self._cache = Cache(self.cache_dir)
            return self._cache

    def close(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.close()

    # -- manifests --------------------------------------------------------------------

    def manifest_body(self, digest: str) -> bytes:
        """The stored document of manifest `digest` (or of one of its shards), as is."""
        with self.catalog.read() as conn:
            return records.manifest_body(conn, digest)

    def manifest_bodies(self, digests: list[str]) -> dict[str, bytes]:
        """`manifest_body` of several documents, in one query."""
        with self.catalog.read() as conn:
            return records.manifest_bodies(conn, digests)

    def load_manifest(self, digest: str) -> Manifest:
        """A version's manifest, verified; a format-3 one reads its shards when needed."""
        return Manifest.from_bytes(
            self.manifest_body(digest),
            expect_digest=digest,
            load=self.manifest_body,
            load_many=self.manifest_bodies,
        )

    # -- files ------------------------------------------------------------------------

    def fetch(self, entries: Iterable[Entry], namespace: str) -> dict[str, str]:
        """Verified local copies of `entries` in the cache, downloaded from `namespace`
        where missing: cache key -> path."""
        downloader = Downloader(
            self.objects,
            self.cache,
            namespace=namespace,
            progress=self.progress,
            concurrency=self.concurrency,
            sources=self.sources,
        )
        return downloader.ensure(entries)

    def open(self, entry: Entry, namespace: str) -> Any:
        """A binary file object reading one entry straight from the store (or from its
        source, for a reference), verified as it is read."""
        if entry.is_reference:
            return open_reference(entry, sources=self.sources)
        reader = EntryReader(self.objects, entry, namespace=namespace)
        return io.BufferedReader(reader, buffer_size=1 << 20)
