"""The catalog side of a run: the narrow service a `Run` handle works through.

A `Run` reads and changes its own row (finish, config and summary merges, refresh) and
asks which versions it logged, used or contributed to. Those are catalog operations,
here in one place, so the handle needs neither `Repository`'s internals nor SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..foundation.errors import NotFound
from . import Catalog, access, lineage, records
from .jsondoc import document


@dataclass(frozen=True)
class RunRecords:
    """Runs in one catalog; rows out, never handles (the API layer builds those)."""

    catalog: Catalog

    def get(self, run_id: str) -> tuple[Any, str] | None:
        """The run's row and project name, or None if the caller may not read it."""
        with self.catalog.read() as conn:
            try:
                row = lineage.get_run(conn, run_id)
            except NotFound:
                return None
            return row, records.project_name(conn, row.project_id)

    def projects_of(self, rows: list[Any]) -> list[tuple[Any, str]]:
        """Each run row with its project's name."""
        with self.catalog.read() as conn:
            return [(r, records.project_name(conn, r.project_id)) for r in rows]

    def finish(self, run_id: str, state: str) -> None:
        with self.catalog.write() as conn:
            lineage.finish_run(conn, run_id, state)

    def merge(
        self, project: str, run_id: str, column: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Set `values`' keys in the run's `config` or `summary`; returns the whole object.
        The merge happens in the catalog, so keys other processes set meanwhile stay."""
        doc = document(values, what=column)
        with self.catalog.write() as conn:
            access.require(conn, project, "write")
            return lineage.merge_document(conn, run_id, column, doc)

    def record_use(self, run_id: str, version_id: int) -> None:
        """Record a use; NotFound if the version was deleted since it was resolved."""
        with self.catalog.write() as conn:
            lineage.record_use(conn, run_id, version_id)

    def logged_by(self, run_id: str) -> list[tuple[Any, list[str]]]:
        with self.catalog.read() as conn:
            return _with_aliases(conn, lineage.logged_by_run(conn, run_id))

    def used_by(self, run_id: str) -> list[tuple[Any, list[str]]]:
        with self.catalog.read() as conn:
            return _with_aliases(conn, lineage.used_by_run(conn, run_id))

    def contributed_by(self, run_id: str) -> list[tuple[Any, list[str]]]:
        with self.catalog.read() as conn:
            return _with_aliases(conn, lineage.contributed_by_run(conn, run_id))

    def users_of(self, version_id: int) -> list[tuple[Any, str]]:
        with self.catalog.read() as conn:
            rows = lineage.users_of(conn, version_id)
        return self.projects_of(rows)

    def contributors_of(self, version_id: int) -> list[tuple[Any, str]]:
        with self.catalog.read() as conn:
            rows = lineage.contributors_of(conn, version_id)
        return self.projects_of(rows)


def _with_aliases(conn: Any, rows: list[Any]) -> list[tuple[Any, list[str]]]:
    tags = records.aliases_of(conn, [r.id for r in rows])
    return [(r, tags[r.id]) for r in rows]
