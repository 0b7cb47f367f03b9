"""The storage interface: six primitives every backend implements.

Keys are '/'-separated relative paths chosen by cairn (see docs/FORMAT.md); backends
never interpret them. Objects are write-once: `put` of an existing key may be skipped.
Retries, concurrency, progress and dry-run wrap a Store; they are not flags inside it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float | None = None


class Store(ABC):
    """A flat key -> bytes namespace under one root URL."""

    url: str
    #: How many requests are worth having in flight at once.
    concurrency: int = 8

    @abstractmethod
    def exists_many(self, keys: Iterable[str]) -> set[str]:
        """Return the subset of `keys` that exist, in as few round trips as the backend allows."""

    @abstractmethod
    def put(self, key: str, data: bytes | memoryview) -> None:
        """Write `data` at `key` atomically: readers see all of it or nothing."""

    @abstractmethod
    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Read bytes [start, end) of `key`; raise FileNotFoundError if it is missing."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Size (and mtime where known) of `key`, or None if it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove `keys`; missing keys are not an error."""

    def get(self, key: str) -> bytes:
        return self.get_range(key, 0, None)

    def put_file(self, key: str, local_path: str) -> None:
        with open(local_path, "rb") as f:
            self.put(key, f.read())

    def sync(self) -> None:  # noqa: B027 - optional hook, most backends are durable on put
        """Make every completed `put` durable (a no-op where put already is)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""
