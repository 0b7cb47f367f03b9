"""What the filesystem has worked out about a version's files, kept per instance.

An engine asks about each file many times per query (DuckDB: `info`, `size`, `modified`
and `open` of every file, from several threads, and again for the next query), and a
version's files never change. So the answer for (version, path) is worked out once: its
info, and for a stored file the range reader (`EntryRanges`) that maps ranges onto its
objects. Keys hold the version's id: when an alias such as `latest` moves on (seen after
`ref_ttl`, or at once after `invalidate_cache()`), its paths name other keys and nothing
stale is served. Bytes are not kept here: readers read through the checked object cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Known:
    """Infos and range readers by key, forgotten all at once past `max_items` (each is
    cheap to work out again; the bound only keeps a long-lived filesystem small)."""

    def __init__(self, max_items: int = 100_000):
        self.max_items = max_items
        self._infos: dict[Hashable, dict[str, Any]] = {}
        self._readers: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def info(self, key: Hashable, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A copy of the info kept under `key` (callers may change what they get), made
        by `make` the first time; errors `make` raises are not kept."""
        info = self._infos.get(key)
        if info is None:
            info = make()
            self._keep(self._infos, key, info)
        return dict(info)

    def reader(self, key: Hashable, make: Callable[[], T]) -> T:
        """The range reader kept under `key`, made by `make` the first time (readers are
        shared by every file opened on that path: they hold no position)."""
        reader: T | None = self._readers.get(key)
        if reader is None:
            reader = make()
            self._keep(self._readers, key, reader)
        return reader

    def clear(self) -> None:
        with self._lock:
            self._infos.clear()
            self._readers.clear()

    def _keep(self, table: dict[Hashable, Any], key: Hashable, value: Any) -> None:
        with self._lock:
            if len(table) >= self.max_items:
                table.clear()
            table.setdefault(key, value)
