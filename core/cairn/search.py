"""Searching versions and runs: what `Repository.search_versions`, `search_runs`,
`count_*` and `*_keys` do (docs/SEARCH.md).

The query is parsed and compiled here (cairn.query, catalog/search.py) and executed by
the catalog; only the requested page of rows comes back, as `ArtifactVersion`s or
`Run`s. Without a project, a search covers every project the caller may read: on
PostgreSQL row-level security filters the rows, whatever the query says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .catalog import access, records
from .catalog import search as sql
from .foundation.errors import InvalidQuery, NotFound
from .foundation.names import check_name
from .foundation.query import format_path

if TYPE_CHECKING:
    from .repository import Repository
    from .run import Run
    from .version import ArtifactVersion

Params = Mapping[str, Any] | None


@dataclass(frozen=True)
class RunKeys:
    """The keys found in matching runs' config and summary, as query paths
    (`val_acc`, `optimizer.lr`, `"learning rate"`): the columns of a table of runs."""

    config: tuple[str, ...]
    summary: tuple[str, ...]


def search_versions(
    repo: Repository,
    query: str,
    *,
    project: str | None,
    name: str | None,
    order_by: str | None,
    limit: int | None,
    offset: int,
    params: Params,
) -> list[ArtifactVersion]:
    from .version import ArtifactVersion

    scope = _Scope(project, name)
    rows, tags = _find(repo, sql.VERSIONS, query, scope, order_by, limit, offset, params)
    return [ArtifactVersion(r, tags[r.id], repo.version_services) for r in rows]


def search_runs(
    repo: Repository,
    query: str,
    *,
    project: str | None,
    order_by: str | None,
    limit: int | None,
    offset: int,
    params: Params,
) -> list[Run]:
    from .run import Run

    rows, _ = _find(repo, sql.RUNS, query, _Scope(project), order_by, limit, offset, params)
    return [Run(repo, r, r.project, repo.run_records) for r in rows]


def count_versions(
    repo: Repository, query: str, *, project: str | None, name: str | None, params: Params
) -> int:
    return _count(repo, sql.VERSIONS, query, _Scope(project, name), params)


def count_runs(repo: Repository, query: str, *, project: str | None, params: Params) -> int:
    return _count(repo, sql.RUNS, query, _Scope(project), params)


def version_keys(
    repo: Repository, query: str, *, project: str | None, name: str | None, params: Params
) -> tuple[str, ...]:
    return _keys(repo, sql.VERSIONS, ("metadata",), query, _Scope(project, name), params)[0]


def run_keys(repo: Repository, query: str, *, project: str | None, params: Params) -> RunKeys:
    found = _keys(repo, sql.RUNS, ("config", "summary"), query, _Scope(project), params)
    return RunKeys(config=found[0], summary=found[1])


def check(
    kind: Literal["versions", "runs"],
    query: str,
    order_by: str | None = None,
    params: Params = None,
) -> None:
    """Raise the InvalidQuery a search of `kind` would, without opening any catalog (the
    CLI checks its input before it touches anything)."""
    target = sql.VERSIONS if kind == "versions" else sql.RUNS
    sql.Search.compile(target, "sqlite", query, order_by=order_by, params=params)


@dataclass(frozen=True)
class _Scope:
    """Where a search looks: one project (else every readable one), one collection."""

    project: str | None
    name: str | None = None

    def check(self, conn: Any) -> _Scope:
        """The scope with checked names, if the caller may read the project."""
        if self.project is None:
            if self.name is not None:
                raise InvalidQuery("a collection name needs its project", what="search")
            return self
        project = check_name(self.project, kind="project")
        if access.level(conn, project) == access.MISSING:
            raise NotFound(f"project {project!r} not found")
        access.require(conn, project, "read")
        return _Scope(project, None if self.name is None else check_name(self.name))


def _find(
    repo: Repository,
    target: sql.Target,
    query: str,
    scope: _Scope,
    order_by: str | None,
    limit: int | None,
    offset: int,
    params: Params,
) -> tuple[list[Any], dict[int, list[str]]]:
    """The rows of one page and, for versions, their aliases (one transaction)."""
    _check_page(limit, offset)
    search = sql.Search.compile(
        target, repo.catalog.dialect, query, params=params, order_by=order_by
    )
    with repo.catalog.read() as conn:
        s = scope.check(conn)
        rows = sql.find(conn, search, project=s.project, name=s.name, limit=limit, offset=offset)
        tags = records.aliases_of(conn, [r.id for r in rows]) if target is sql.VERSIONS else {}
    return rows, tags


def _count(repo: Repository, target: sql.Target, query: str, scope: _Scope, params: Params) -> int:
    search = sql.Search.compile(target, repo.catalog.dialect, query, params=params)
    with repo.catalog.read() as conn:
        s = scope.check(conn)
        return sql.count(conn, search, project=s.project, name=s.name)


def _keys(
    repo: Repository,
    target: sql.Target,
    documents: tuple[str, ...],
    query: str,
    scope: _Scope,
    params: Params,
) -> list[tuple[str, ...]]:
    search = sql.Search.compile(target, repo.catalog.dialect, query, params=params)
    with repo.catalog.read() as conn:
        s = scope.check(conn)
        return [
            tuple(
                format_path(path)
                for path in sql.keys(conn, search, doc, project=s.project, name=s.name)
            )
            for doc in documents
        ]


def _check_page(limit: int | None, offset: int) -> None:
    for what, value in (("limit", limit), ("offset", offset)):
        if value is None and what == "limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidQuery(
                f"{what} must be a whole number, 0 or more, not {value!r}", what=what
            )


__all__ = [
    "RunKeys",
    "check",
    "count_runs",
    "count_versions",
    "run_keys",
    "search_runs",
    "search_versions",
    "version_keys",
]
