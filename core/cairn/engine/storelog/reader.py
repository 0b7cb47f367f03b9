"""Reading the store log back, and compacting it into snapshots.

The log of a namespace is its snapshots plus the records no snapshot names. Reading
merges every snapshot (last writer wins, item by item, so two compactions that ran at
once both count) and folds the remaining records in stamp order. Compaction writes that
result as one new snapshot naming every record it read, and only once that snapshot is
durable deletes those records and the snapshots it merged: a record no snapshot holds is
never deleted, whatever writers and other compactions do meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ...catalog.journal import stamp
from ...foundation.errors import CairnError
from ...foundation.layout import SHARED
from ...storage import Store
from .format import (
    NAMESPACES,
    RECORDS,
    SNAPSHOTS,
    Record,
    Snapshot,
    decode_record,
    decode_snapshot,
    encode_snapshot,
    log_prefix,
    snapshot_key,
)
from .state import State


@dataclass
class Log:
    """What one read of the log found: snapshots and the records not in them."""

    snapshots: list[Snapshot] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    #: every record key listed, those already in a snapshot included
    record_keys: list[str] = field(default_factory=list)

    def state(self) -> State:
        state = State()
        for snap in self.snapshots:
            state.merge_state(State.of(snap.items))
        for rec in sorted(self.records, key=lambda r: (r.at, r.key)):
            state.apply(rec.at, rec.entries)
        return state


def namespaces(store: Store) -> list[str]:
    """Every namespace with a log: the shared one and each private one marked."""
    found = {info.key[len(NAMESPACES) :] for info in store.list(NAMESPACES)}
    return [SHARED, *sorted(n for n in found if n)]


def read(store: Store, namespace_list: list[str] | None = None) -> Log:
    """The log of the given namespaces (default: all), in as few requests as it takes.

    Records are listed before snapshots: a compaction that deletes records wrote the
    snapshot holding them first. One that deleted what this read listed makes it read again.
    """
    for _ in range(10):
        log = _read(store, namespace_list)
        if log is not None:
            return log
    raise CairnError("the store log kept changing while it was read (compactions?): try again")


def _read(store: Store, namespace_list: list[str] | None) -> Log | None:
    log = Log()
    record_keys: list[str] = []
    snapshot_keys: list[str] = []
    for namespace in namespace_list if namespace_list is not None else namespaces(store):
        prefix = log_prefix(namespace)
        record_keys += [i.key for i in store.list(prefix + RECORDS) if i.key.endswith(".json")]
        snapshot_keys += [i.key for i in store.list(prefix + SNAPSHOTS) if i.key.endswith(".gz")]
    got = store.get_many(snapshot_keys)
    if _vanished(got.failed):
        return None
    log.snapshots = [decode_snapshot(k, got.ok[k]) for k in sorted(got.ok)]
    included = frozenset().union(*(s.records for s in log.snapshots))
    log.record_keys = record_keys
    wanted = [k for k in record_keys if k not in included]
    fetched = store.get_many(wanted)
    if _vanished(fetched.failed):
        return None  # compacted meanwhile: in a snapshot this read has not listed
    log.records = [decode_record(k, fetched.ok[k]) for k in sorted(fetched.ok)]
    return log


def _vanished(failed: dict[str, BaseException]) -> bool:
    for exc in failed.values():
        if not isinstance(exc, FileNotFoundError):
            raise exc
    return bool(failed)


@dataclass(frozen=True)
class CompactReport:
    namespaces: int
    records: int
    snapshots: int

    def __str__(self) -> str:
        return (
            f"compacted {self.records} records and {self.snapshots} snapshots into "
            f"{self.namespaces} snapshot(s)"
        )


def compact(store: Store, only: list[str] | None = None) -> CompactReport:
    """Fold each namespace's records (of `only`, default all) into one snapshot, then
    delete what it holds."""
    folded = merged = written = 0
    for namespace in namespaces(store) if only is None else only:
        log = read(store, [namespace])
        if not log.records and len(log.snapshots) <= 1:
            continue
        at = stamp(datetime.now(timezone.utc)) or ""
        items = log.state().items
        data = encode_snapshot(at, items, sorted(log.record_keys), genesis=False)
        store.put(snapshot_key(namespace, at), data)
        store.sync()  # the snapshot is durable before anything it holds goes
        store.delete(log.record_keys)
        store.delete([s.key for s in log.snapshots])
        folded += len(log.record_keys)
        merged += len(log.snapshots)
        written += 1
    return CompactReport(written, folded, merged)
