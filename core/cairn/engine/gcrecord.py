"""gc's record of a decision: what one run is about to delete, kept in the store.

Written (and made durable) under `gc/` before the run deletes anything, catalog rows
included, so a deletion is never the only trace of a decision: an operator can see
what went, when, by which catalog of which repository, and `cairn recover`-style tools
can tell a deleted object from a lost one. Records are immutable, gzip-compressed JSON,
and nothing in cairn deletes them (docs/FORMAT.md "gc records").
"""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..foundation.layout import GC, gc_record_key
from ..storage import Store

FORMAT = 1


@dataclass(frozen=True)
class Doomed:
    """One store object a gc run deletes."""

    key: str
    namespace: str
    digest: str
    size: int


@dataclass(frozen=True)
class GCRecord:
    repository: str
    catalog: str
    started_at: str
    grace_seconds: float
    #: store objects (loose objects, manifests, packs) to delete; one that a writer
    #: claims again before the deleting transaction is kept (and the report counts it)
    delete: list[Doomed] = field(default_factory=list)
    #: manifest digests whose catalog rows go (no live version or writer names them)
    manifest_rows: list[str] = field(default_factory=list)
    #: packs rewritten with their live objects alone: namespace, old pack, new pack
    repacked: list[dict[str, str]] = field(default_factory=list)
    #: pack index rows dropped, per (namespace, pack): how many objects they listed
    forgotten: list[dict[str, Any]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        doc = {"format": FORMAT, "kind": "gc", **asdict(self)}
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return gzip.compress(body, mtime=0)


def write_record(store: Store, record: GCRecord) -> str:
    """Store the record durably; returns its key."""
    stamp = datetime.fromisoformat(record.started_at).strftime("%Y%m%dT%H%M%SZ")
    key = gc_record_key(stamp, uuid.uuid4().hex[:12])
    store.put(key, record.to_bytes())
    store.sync()
    return key


def read_record(store: Store, key: str) -> dict[str, Any]:
    """A record as its JSON document."""
    doc: dict[str, Any] = json.loads(gzip.decompress(store.get(key)))
    return doc


def record_keys(store: Store) -> list[str]:
    """Every gc record's key, oldest first."""
    return [info.key for info in store.list(GC)]


def utc_stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


__all__ = ["Doomed", "GCRecord", "read_record", "record_keys", "write_record"]
