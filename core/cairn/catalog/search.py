"""Searching versions and runs: a parsed query (cairn.query) compiled to SQLAlchemy Core.

The catalog filters, sorts, pages and counts; Python only receives the page it asked
for. Values and keys reach the database as bound parameters only. On PostgreSQL,
row-level security already hides what the caller may not read, so a search over every
project returns only readable rows. docs/SEARCH.md is the user's description of the
semantics implemented here:

- a comparison is TRUE or FALSE, never unknown, so `NOT` is plain negation;
- a field that is missing or null matches no comparison but `= null` (and `!=` needs
  the field present: `metadata.x != 'a'` skips versions without x);
- `alias` is a set: `alias = 'production'` means "has that alias", `alias != 'x'`
  means "does not have it";
- versions marked DELETED are left out unless the query names `state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, func, select, true

from ..foundation.query import fields as fields_of
from ..foundation.query import parse, parse_order
from .compiler import Column, Compiler, Target
from .jsondoc import documents
from .records import DELETED, version_query
from .schema import collections, projects, runs, versions

#: how deep `keys` descends into nested objects, and how many keys it reports at most
MAX_KEY_DEPTH, MAX_KEYS = 8, 1000


def _runs_query() -> Select[Any]:
    return select(runs, projects.c.name.label("project")).join(
        projects, projects.c.id == runs.c.project_id
    )


VERSIONS = Target(
    noun="version",
    columns={
        "project": Column(projects.c.name, "string"),
        "name": Column(collections.c.name, "string"),
        "type": Column(collections.c.type, "string"),
        "version": Column(versions.c.idx, "version", nullable=True),
        "state": Column(versions.c.state, "state"),
        "digest": Column(versions.c.digest, "string", nullable=True),
        "description": Column(versions.c.description, "string", nullable=True),
        "size": Column(versions.c.size, "number"),
        "files": Column(versions.c.file_count, "number"),
        "created_at": Column(versions.c.created_at, "datetime"),
        "committed_at": Column(versions.c.committed_at, "datetime", nullable=True),
    },
    documents={"metadata": versions.c.metadata},
    base=version_query,
    project=projects.c.name,
    newest=(versions.c.created_at.desc(), versions.c.id.desc()),
    has_alias=True,
)
RUNS = Target(
    noun="run",
    columns={
        "project": Column(projects.c.name, "string"),
        "id": Column(runs.c.id, "string"),
        "name": Column(runs.c.name, "string", nullable=True),
        "job_type": Column(runs.c.job_type, "string", nullable=True),
        "group": Column(runs.c.group_name, "string", nullable=True),
        "kind": Column(runs.c.kind, "string"),
        "state": Column(runs.c.state, "string"),
        "created_at": Column(runs.c.created_at, "datetime"),
        "finished_at": Column(runs.c.finished_at, "datetime", nullable=True),
    },
    documents={
        "config": runs.c.config,
        "summary": runs.c.summary,
        "attributes": runs.c.attributes,
    },
    base=_runs_query,
    project=projects.c.name,
    newest=(runs.c.created_at.desc(), runs.c.id.desc()),
)


# -- running searches -------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """A query compiled for one target and dialect: its filter and its order."""

    target: Target
    where: ColumnElement[bool]
    order: list[Any]

    @classmethod
    def compile(
        cls,
        target: Target,
        dialect: str,
        query: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        order_by: str | None = None,
    ) -> Search:
        expr = parse(query, params)
        compiler = Compiler(target, dialect, query)
        where = compiler.where(expr) if expr is not None else true()
        if target is VERSIONS and not any(f.head == "state" for f in fields_of(expr)):
            where = and_(where, versions.c.state != DELETED)
        sorter = Compiler(target, dialect, order_by or "", what="order_by")
        order = sorter.order(parse_order(order_by) if order_by else None)
        return cls(target, where, order)

    def select(self, project: str | None, name: str | None = None) -> Select[Any]:
        """The matching rows, in `project` (else any) and of collection `name` (else any)."""
        q = self.target.base().where(self.where)
        if project is not None:
            q = q.where(self.target.project == project)
        if name is not None:
            q = q.where(self.target.columns["name"].expr == name)
        return q


def find(
    conn: Connection,
    search: Search,
    *,
    project: str | None,
    name: str | None = None,
    limit: int | None,
    offset: int,
) -> list[Row]:
    """The matching rows, sorted, `limit` of them from `offset`."""
    q = search.select(project, name).order_by(*search.order)
    if limit is not None:
        q = q.limit(limit)
    if offset:
        q = q.offset(offset)
    return list(conn.execute(q))


def count(conn: Connection, search: Search, *, project: str | None, name: str | None = None) -> int:
    """How many rows match (what a pager shows as the total)."""
    q = search.select(project, name).with_only_columns(func.count(), maintain_column_froms=False)
    return int(conn.execute(q).scalar_one())


def keys(
    conn: Connection,
    search: Search,
    document: str,
    *,
    project: str | None,
    name: str | None = None,
) -> list[tuple[str, ...]]:
    """Every key path holding a non-object value in `document` (e.g. "summary") of the
    matching rows, sorted: the columns a table of the results needs. Nested objects are
    followed MAX_KEY_DEPTH levels deep; at most MAX_KEYS paths are returned."""
    column = search.target.documents[document]
    docs = documents(conn.dialect.name)
    found: set[tuple[str, ...]] = set()
    frontier: list[tuple[str, ...]] = [()]
    for _ in range(MAX_KEY_DEPTH):
        deeper: set[tuple[str, ...]] = set()
        for prefix in frontier:
            each, key, nested = docs.each_key(column, prefix)
            q = (
                search.select(project, name)
                .join(each, true())
                .where(key.is_not(None))
                .with_only_columns(key, nested, maintain_column_froms=False)
                .distinct()
            )
            for found_key, is_object in conn.execute(q):
                path = (*prefix, str(found_key))
                (deeper if is_object else found).add(path)
                if len(found) >= MAX_KEYS:
                    return sorted(found)[:MAX_KEYS]
        if not deeper:
            break
        frontier = sorted(deeper)
    return sorted(found)


__all__ = ["RUNS", "VERSIONS", "Search", "Target", "count", "find", "keys"]
