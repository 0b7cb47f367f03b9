"""What a reference source is: list objects, say what is there now, stream pinned bytes.

A Source class serves the URL schemes in its `protocols`; `Sources` builds one instance
per scheme with that scheme's storage options and hands it out by URI.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from ...foundation.errors import ReferenceChanged
from ...foundation.manifest import Entry
from ...storage.retry import is_transient

T = TypeVar("T")

#: bytes per request when a source is read piece by piece
BLOCK = 8 << 20


@dataclass(frozen=True)
class SourceObject:
    """One object at a source as it is now: its URI, size and what pins its content."""

    uri: str
    size: int
    pin: Mapping[str, Any] = field(default_factory=dict)
    digest: str | None = None


class Source(ABC):
    """Objects under one URL scheme. Every method may raise a transient error; callers retry."""

    protocols: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Mapping[str, Any]):
        self.options = dict(options)

    @abstractmethod
    def objects(self, uri: str, *, limit: int | None, checksum: bool) -> list[SourceObject]:
        """The object at `uri`, else every object below it as a prefix, in URI order.

        Lists at most `limit + 1` objects (so the caller can tell the limit was passed).
        With `checksum`, each object carries its pin (and digest where the source has no
        other way to pin content). Raises NotFound when there is nothing at `uri`.
        """

    @abstractmethod
    def current(self, entry: Entry) -> SourceObject | None:
        """What the source holds now for `entry` (its pinned version where versions are
        kept), or None when that is gone."""

    @abstractmethod
    def stream(self, entry: Entry) -> Iterator[bytes]:
        """The entry's whole content in pieces; ReferenceChanged as soon as the source
        shows it is not the pinned content."""

    @abstractmethod
    def read(self, entry: Entry, start: int, end: int) -> bytes:
        """Bytes [start, end) of the entry's content, checked against the pin as far as
        one ranged request allows."""

    def changed(self, entry: Entry, now: SourceObject) -> str | None:
        """Why `now` is not the content `entry` pinned, or None when it is."""
        for name, then in entry.pin.items():
            if name in now.pin and now.pin[name] != then:
                return f"{name} was {then!r}, is now {now.pin[name]!r}"
        if entry.pin and now.size != entry.size:
            return f"size was {entry.size}, is now {now.size}"
        return None


def validated(entry: Entry) -> bool:
    """False for references logged with checksum=False: their source is trusted as is."""
    return bool(entry.pin) or entry.digest is not None


def changed_error(entry: Entry, why: str) -> ReferenceChanged:
    return ReferenceChanged(
        f"{entry.path}: the referenced object {entry.ref} changed since it was logged "
        f"({why}); log a new version to use its current content"
    )


def retrying(fn: Callable[[], T], *, attempts: int = 6, base_delay: float = 0.1) -> T:
    """fn(), again after a jittered exponential pause while it fails transiently."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt + 1 >= attempts or not is_transient(exc):
                raise
        time.sleep(random.uniform(0, min(10.0, base_delay * 2**attempt)))
    raise AssertionError("unreachable")


def protocol_of(uri: str) -> str:
    """'s3' for s3://..., 'file' for file:// URLs and plain paths."""
    return uri.split("://", 1)[0].lower() if "://" in uri else "file"
