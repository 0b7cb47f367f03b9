"""Writing the store log: one record per write transaction, before its catalog commit.

`StoreLog` is the catalog's journal (catalog/journal.py). A transaction's entries are
grouped by the store namespace of their project (a private project's records stay under
its own prefix, like its bytes: docs/ACCESS.md), each group written as one record object
and made durable, and only then does the transaction commit. A failed write rolls the
transaction back: nothing is committed that the log does not hold.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, select, text

from ...catalog.journal import stamp
from ...catalog.schema import projects
from ...foundation.layout import SHARED, namespace_for
from ...storage import Store
from .format import NAMESPACES, STARTED_KEY, encode_record, record_key
from .genesis import write_genesis

#: on average, one commit in this many compacts the namespaces it wrote to afterwards,
#: so a log holds about this many records beyond its snapshots (reading stays fast)
COMPACT_EVERY = 1000


class StoreLog:
    """The journal that writes each transaction's record into `store`."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._started = False
        self._namespaces: set[str] = {SHARED}
        self._last = ""
        self._written: set[str] = set()

    def flush(self, conn: Connection, entries: list[dict[str, Any]]) -> None:
        if not self._started:
            self._start(conn)
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # a version's entry knows its namespace; other entries of its project go with it
        where = {e["project"]: e.pop("namespace") for e in entries if "namespace" in e}
        unknown = {e["project"] for e in entries} - where.keys()
        if unknown:
            where.update(_namespaces(conn, unknown))
        for entry in entries:
            groups[where.get(entry["project"], entry["project"])].append(entry)
        at = self._stamp(conn)
        puts: dict[str, bytes] = {}
        for namespace, group in groups.items():
            if namespace not in self._namespaces:
                # recover finds a private namespace's log through this marker
                puts[f"{NAMESPACES}{namespace}"] = b""
                self._namespaces.add(namespace)
            puts[record_key(namespace, at)] = encode_record(at, group)
        # durable before the catalog commits (docs/FORMAT.md "Store log", write order)
        if len(puts) == 1:
            key, data = next(iter(puts.items()))
            self.store.put_durable(key, data)
        else:
            self.store.put_many(puts).raise_first()
            self.store.sync()
        self._written = set(groups)

    def committed(self) -> None:
        if random.random() * COMPACT_EVERY >= 1:
            return
        from .reader import compact

        # the commit stands whatever happens here; a later compaction tries again
        with contextlib.suppress(Exception):
            compact(self.store, sorted(self._written))

    def _stamp(self, conn: Connection) -> str:
        """The record's time: the database's clock, read now (PostgreSQL: not the
        transaction's start), so a record written after another's commit sorts after it."""
        if conn.dialect.name == "postgresql":
            moment: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        else:
            moment = datetime.now(timezone.utc)
        with self._lock:
            value = stamp(moment) or ""
            if value <= self._last:  # strictly increasing within this process
                last = datetime.fromisoformat(self._last)
                value = stamp(last + timedelta(microseconds=1)) or ""
            self._last = value
        return value

    def _start(self, conn: Connection) -> None:
        """Before this process's first record: make sure the log holds what the catalog
        held before there was a log (once per store; docs/FORMAT.md "Genesis")."""
        with self._lock:
            if self._started:
                return
            try:
                started = self.store.stat(STARTED_KEY) is not None
            except PermissionError:
                started = True  # a role without the shared log: a maintainer starts it
            if not started:
                write_genesis(self.store, conn.engine)
            self._started = True


def _namespaces(conn: Connection, names: set[str]) -> dict[str, str]:
    rows = conn.execute(
        select(projects.c.name, projects.c.visibility).where(projects.c.name.in_(sorted(names)))
    )
    return {r.name: namespace_for(r.name, r.visibility) for r in rows}
