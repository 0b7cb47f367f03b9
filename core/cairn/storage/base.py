"""The storage interface: six primitives every backend implements, plus batched forms.

Keys are '/'-separated relative paths chosen by cairn (see docs/FORMAT.md); backends
never interpret them. Objects are named by their content and cairn writes each once,
except to repair it: `put` of an existing key must replace it (a good copy over one
`cairn verify` found corrupt), never skip it.
Retries, concurrency, progress and dry-run wrap a Store; they are not flags inside it.

`put_many` and `get_many` have sequential defaults built on `put` and `get`; a backend
that can have many requests in flight (an async cloud client) overrides them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: float | None = None


@dataclass
class Batch(Generic[T]):
    """What a batched call did: the value per key that succeeded, the error per key that failed."""

    ok: dict[str, T] = field(default_factory=dict)
    failed: dict[str, BaseException] = field(default_factory=dict)

    def raise_first(self) -> None:
        """Raise the error of the first failed key (in key order), if any failed."""
        if self.failed:
            raise self.failed[min(self.failed)]


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
        """Write `data` at `key` atomically, replacing what is there: readers see the old
        object or all of the new one, never a mix."""

    @abstractmethod
    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Read bytes [start, end) of `key`; raise FileNotFoundError if it is missing."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Size (and mtime where known) of `key`, or None if it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove `keys`; missing keys are not an error."""

    def get(self, key: str) -> bytes:
        return self.get_range(key, 0, None)

    def put_many(self, items: Mapping[str, bytes | memoryview]) -> Batch[None]:
        """Write every item; a failed key is reported in the result, not raised."""
        out: Batch[None] = Batch()
        for key, data in items.items():
            try:
                self.put(key, data)
            except Exception as exc:
                out.failed[key] = exc
            else:
                out.ok[key] = None
        return out

    def get_many(self, keys: Iterable[str]) -> Batch[bytes]:
        """Read whole objects; a missing key fails with FileNotFoundError in the result."""
        out: Batch[bytes] = Batch()
        for key in keys:
            try:
                out.ok[key] = self.get(key)
            except Exception as exc:
                out.failed[key] = exc
        return out

    def put_file(self, key: str, local_path: str) -> None:
        with open(local_path, "rb") as f:
            self.put(key, f.read())

    def put_durable(self, key: str, data: bytes | memoryview) -> None:
        """`put`, durable on return: a small object that must be stored before something
        else happens (a store-log record before its catalog commit). A backend whose
        `sync` makes every earlier put durable at once may do just this one instead."""
        self.put(key, data)
        self.sync()

    def sync(self) -> None:  # noqa: B027 - optional hook, most backends are durable on put
        """Make every completed `put` durable (a no-op where put already is)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""
