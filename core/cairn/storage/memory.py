"""An in-process store, for tests and throwaway repositories."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

from .base import ObjectInfo, Store


class MemoryStore(Store):
    def __init__(self, name: str = "default"):
        self.url = f"memory-store://{name}"
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        with self._lock:
            return {k for k in keys if k in self._objects}

    def put(self, key: str, data: bytes | memoryview) -> None:
        with self._lock:
            self._objects[key] = (bytes(data), time.time())

    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        with self._lock:
            if key not in self._objects:
                raise FileNotFoundError(key)
            return self._objects[key][0][start:end]

    def stat(self, key: str) -> ObjectInfo | None:
        with self._lock:
            item = self._objects.get(key)
        return None if item is None else ObjectInfo(key, len(item[0]), item[1])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            items = sorted((k, v) for k, v in self._objects.items() if k.startswith(prefix))
        for k, (data, mtime) in items:
            yield ObjectInfo(k, len(data), mtime)

    def delete(self, keys: Iterable[str]) -> None:
        with self._lock:
            for k in keys:
                self._objects.pop(k, None)
