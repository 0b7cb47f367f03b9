"""The first step of a log: local files stat'ed and looked up in the stat cache.

A log of a folder of a million files never holds a list of them: the files come as a
stream in path order (`Artifact.files()`), and are scanned here in bounded batches, each
with its stamps and the digests the stat cache knows for the unchanged ones. The next
steps (cairn.transfer: send what the store lacks; cairn.staging: stage the manifest) take
one batch at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from ..foundation.errors import CairnError
from ..foundation.manifest import Entry
from .statcache import Known, Stamp, StatCache, stamp

#: files stat'ed and looked up per batch (what a log holds of its files at a time)
BATCH_FILES = 4096


@dataclass
class Scan:
    """Local files (logical path, local path) with their stamps at scan time, and the
    digests the stat cache knows for the unchanged ones (keyed by local path)."""

    items: list[tuple[str, str]]
    stamps: dict[str, Stamp]
    known: dict[str, Known]

    def entries(self) -> list[Entry] | None:
        """Every file's entry when the stat cache knows them all (nothing to read), else None."""
        if any(local not in self.known for local in self.stamps):
            return None
        return [
            Entry(logical, self.stamps[local][1], *self.known[local])
            for logical, local in self.items
        ]

    @property
    def bytes(self) -> int:
        return sum(s[1] for s in self.stamps.values())


def scan(files: Iterable[tuple[str, str]], statcache: StatCache | None) -> Scan:
    """Stat every local file and look the stamps up in the stat cache."""
    items = list(files)
    stamps: dict[str, Stamp] = {}
    for _, local in items:
        try:
            st = os.stat(local)
        except FileNotFoundError:
            raise CairnError(
                f"file {local!r} disappeared while logging; nothing was logged"
            ) from None
        stamps[local] = stamp(st)
    return Scan(items, stamps, statcache.lookup(stamps) if statcache else {})


def batches(
    files: Iterable[tuple[str, str]], statcache: StatCache | None, *, size: int | None = None
) -> Iterator[Scan]:
    """`scan` of consecutive batches of at most `size` (`BATCH_FILES`) files, in order."""
    it = iter(files)
    while True:
        part = list(islice(it, size or BATCH_FILES))
        if not part:
            return
        yield scan(part, statcache)
