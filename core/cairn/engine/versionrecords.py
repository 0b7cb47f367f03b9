"""The catalog side of a version: the narrow service an `ArtifactVersion` handle edits,
deletes, reads itself again and holds a draft's parent through.

Each change is checked against the caller's access, written in one catalog transaction
and announced to the listeners once committed, so the handle needs neither
`Repository`'s internals nor SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..catalog import Catalog, access, leases, records
from ..catalog import retention as retention_rows
from ..foundation.errors import CairnError, Conflict
from ..foundation.names import LATEST
from .changes import track
from .events import Listeners


@dataclass(frozen=True)
class VersionRecords:
    """Versions in one catalog; rows out, never handles (the API layer builds those)."""

    catalog: Catalog
    #: who hears about the changes made here
    listeners: Listeners

    def get(self, version_id: int) -> tuple[Any, list[str]]:
        """The version's row and its aliases (NotFound if there is no such version)."""
        with self.catalog.read() as conn:
            row = records.version_by_id(conn, version_id)
            return row, records.aliases_of(conn, [row.id])[row.id]

    def save(
        self,
        version_id: int,
        *,
        project: str,
        ref: str,
        description: str | None,
        metadata: Mapping[str, Any],
        aliases: Sequence[str],
        before: Sequence[str],
    ) -> None:
        """Write a committed version's description, metadata and aliases: those in
        `before` (the ones it held when read) and not in `aliases` are taken off, except
        `latest`, which is cairn's."""
        changes = track(self.listeners)
        with self.catalog.write() as conn:
            access.require(conn, project, "write")
            row = records.version_by_id(conn, version_id)
            if row.state != records.COMMITTED:
                raise CairnError(f"{ref} is {row.state}; only committed versions can be edited")
            changes.watch(conn, row.collection_id)
            changes.edited(version_id, _edited(row, description, metadata))
            records.update_version(conn, version_id, description=description, metadata=metadata)
            for a in set(before) - set(aliases) - {LATEST}:
                records.remove_alias(conn, row.collection_id, a, version_id)
            for a in aliases:
                records.set_alias(conn, row.collection_id, a, version_id)
            events = changes.events(conn)
        self.listeners.emit(events)

    def delete(self, version_id: int, *, project: str, ref: str, force: bool = False) -> None:
        """Mark the version DELETED; refused while it holds a protected alias, unless
        `force`."""
        changes = track(self.listeners)
        with self.catalog.write() as conn:
            access.require(conn, project, "write")
            row = records.version_by_id(conn, version_id)
            records.guard_deletions(conn, row.collection_id, exclusive=True)
            if not force:
                held = set(records.aliases_of(conn, [row.id])[row.id])
                guarded = sorted(held & set(retention_rows.protected(conn, row.collection_id)))
                if guarded:
                    raise Conflict(
                        f"{ref} holds protected alias {', '.join(guarded)}: no command "
                        "deletes it; move the alias to another version first, or pass "
                        "force=True (--force)"
                    )
            changes.watch(conn, row.collection_id)
            records.mark_deleted(conn, row)
            if row.state == records.COMMITTED:
                changes.deleted(version_id)
            events = changes.events(conn)
        self.listeners.emit(events)

    def hold(self, version_id: int, *, namespace: str, digest: str | None) -> str:
        """Hold a version a draft starts from: `retain` keeps it, and `gc` its objects,
        until the draft is logged (`release`) or the returned lease expires."""
        with self.catalog.write() as conn:
            records.hold(conn, version_id)
            return leases.create(conn, namespace=namespace, manifest_digest=digest)

    def release(self, lease_id: str) -> None:
        """Drop a draft's lease: the draft is logged, its parent need not be held."""
        with self.catalog.write() as conn:
            leases.drop(conn, lease_id)


def _edited(row: Any, description: str | None, metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields an edit changes: 'description', 'metadata' (as the catalog holds them)."""
    changed = []
    if (row.description or None) != (description or None):
        changed.append("description")
    if dict(row.metadata or {}) != dict(metadata):
        changed.append("metadata")
    return tuple(changed)
