"""gc's record of a decision: what one run is about to delete, kept in the store.

Written (and made durable) under `gc/` before the run deletes anything, catalog rows
included, so a deletion is never the only trace of a decision: an operator can see
what went, when, by which catalog of which repository, and `cairn recover`-style tools
can tell a deleted object from a lost one. Records are immutable, gzip-compressed JSON,
and nothing in cairn deletes them (docs/FORMAT.md "gc records").
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import IO, Any

from ..foundation.layout import GC, gc_record_key
from ..storage import Store

FORMAT = 1
#: entries a DoomedList holds in memory (about 9 MB) before it moves them to a file
_IN_MEMORY = 20_000


@dataclass(frozen=True)
class Doomed:
    """One store object a gc run deletes."""

    key: str
    namespace: str
    digest: str
    size: int


class DoomedList:
    """What a gc run decided to delete, in the order it decided: in memory up to
    _IN_MEMORY entries, past that in an unnamed temporary file in `folder` (a line of
    JSON each), so a run that deletes a million loose objects holds a few of them at a
    time. Iterated as often as needed; closed (the file gone) by `close`."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._tail: list[Doomed] = []
        self._file: IO[bytes] | None = None
        self._count = 0

    def append(self, doomed: Doomed) -> None:
        self._tail.append(doomed)
        self._count += 1
        if len(self._tail) >= _IN_MEMORY:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=self.folder)  # noqa: SIM115 - close()
            self._file.seek(0, os.SEEK_END)
            self._file.writelines(
                json.dumps([d.key, d.namespace, d.digest, d.size]).encode() + b"\n"
                for d in self._tail
            )
            self._tail = []

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Doomed]:
        if self._file is not None:
            self._file.seek(0)
            for line in self._file:
                key, namespace, digest, size = json.loads(line)
                yield Doomed(key, namespace, digest, size)
        yield from self._tail

    def batches(self, size: int) -> Iterator[list[Doomed]]:
        entries = iter(self)
        while batch := list(itertools.islice(entries, size)):
            yield batch

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DoomedList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class GCRecord:
    repository: str
    catalog: str
    started_at: str
    grace_seconds: float
    #: store objects (loose objects, manifests, packs) to delete; one that a writer
    #: claims again before the deleting transaction is kept (and the report counts it)
    delete: Iterable[Doomed] = field(default_factory=list)
    #: manifest digests whose catalog rows go (no live version or writer names them)
    manifest_rows: list[str] = field(default_factory=list)
    #: packs rewritten with their live objects alone: namespace, old pack, new pack
    repacked: list[dict[str, str]] = field(default_factory=list)
    #: pack index rows dropped, per (namespace, pack): how many objects they listed
    forgotten: list[dict[str, Any]] = field(default_factory=list)

    def write(self, out: IO[bytes]) -> None:
        """The record's canonical JSON (keys sorted, no spaces), gzip-compressed, into
        `out`, its deletions a batch at a time."""
        doc = {"format": FORMAT, "kind": "gc"}
        doc.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "delete"})
        doc["delete"] = []
        # keys are sorted and strings escape their quotes: `"delete":[]` is the one place
        head, tail = _canonical(doc).split('"delete":[]')
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
            gz.write(f'{head}"delete":['.encode())
            for i, d in enumerate(self.delete):
                gz.write(("," if i else "").encode() + _canonical(asdict(d)).encode())
            gz.write(f"]{tail}".encode())


def write_record(store: Store, record: GCRecord, folder: str) -> str:
    """Store the record durably, written through a temporary file in `folder` (a
    record of a million deletions is never one string in memory); returns its key."""
    stamp = datetime.fromisoformat(record.started_at).strftime("%Y%m%dT%H%M%SZ")
    key = gc_record_key(stamp, uuid.uuid4().hex[:12])
    fd, path = tempfile.mkstemp(prefix=".tmp-gc-", suffix=".json.gz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            record.write(out)
        store.put_file(key, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    store.sync()
    return key


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def read_record(store: Store, key: str) -> dict[str, Any]:
    """A record as its JSON document."""
    doc: dict[str, Any] = json.loads(gzip.decompress(store.get(key)))
    return doc


def record_keys(store: Store) -> list[str]:
    """Every gc record's key, oldest first."""
    return [info.key for info in store.list(GC)]


def utc_stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


__all__ = ["Doomed", "DoomedList", "GCRecord", "read_record", "record_keys", "write_record"]
