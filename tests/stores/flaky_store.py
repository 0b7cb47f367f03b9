"""FlakyStore: a store wrapper that fails a fraction of calls the way networks do.

Half of the injected failures happen before the call reaches the store (the request was
lost), half after it (the store did the work but the answer was lost), each raising
ConnectionResetError. Seeded, so a failing run repeats.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from cairn.storage import Batch, ObjectInfo, Store

T = TypeVar("T")


class FlakyStore(Store):
    def __init__(self, inner: Store, *, rate: float = 0.3, seed: int = 0):
        self.inner = inner
        self.url = inner.url
        self.concurrency = inner.concurrency
        self.rate = rate
        self.failures = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def _roll(self) -> str | None:
        with self._lock:
            r = self._rng.random()
            if r >= self.rate:
                return None
            self.failures += 1
            return "before" if r < self.rate / 2 else "after"

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        when = self._roll()
        if when == "before":
            raise ConnectionResetError("injected: connection reset before the request")
        out = fn(*args)
        if when == "after":
            raise ConnectionResetError("injected: connection reset before the answer")
        return out

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        return self._call(self.inner.exists_many, list(keys))

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._call(self.inner.put, key, data)

    def put_many(self, items: Mapping[str, bytes | memoryview]) -> Batch[None]:
        out: Batch[None] = Batch()
        for key, data in items.items():
            try:
                self.put(key, data)
                out.ok[key] = None
            except ConnectionResetError as exc:
                out.failed[key] = exc
        return out

    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self._call(self.inner.get_range, key, start, end)

    def stat(self, key: str) -> ObjectInfo | None:
        return self._call(self.inner.stat, key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._call(lambda: [*self.inner.list(prefix)]))

    def delete(self, keys: Iterable[str]) -> None:
        self._call(self.inner.delete, list(keys))

    def sync(self) -> None:
        self.inner.sync()

    def close(self) -> None:
        self.inner.close()
