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
from typing import TYPE_CHECKING, Any

from . import access
from .catalog import search as sql
from .errors import InvalidQuery, NotFound
from .names import check_name
from .query import format_path

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
    order_by: str | None,
    limit: int | None,
    offset: int,
    params: Params,
) -> list[ArtifactVersion]:
    rows = _find(repo, sql.VERSIONS, query, project, order_by, limit, offset, params)
    return repo._versions(rows)


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

    rows = _find(repo, sql.RUNS, query, project, order_by, limit, offset, params)
    return [Run(repo, r, r.project) for r in rows]


def count_versions(repo: Repository, query: str, *, project: str | None, params: Params) -> int:
    return _count(repo, sql.VERSIONS, query, project, params)


def count_runs(repo: Repository, query: str, *, project: str | None, params: Params) -> int:
    return _count(repo, sql.RUNS, query, project, params)


def version_keys(
    repo: Repository, query: str, *, project: str | None, params: Params
) -> tuple[str, ...]:
    return _keys(repo, sql.VERSIONS, ("metadata",), query, project, params)[0]


def run_keys(repo: Repository, query: str, *, project: str | None, params: Params) -> RunKeys:
    config, summary = _keys(repo, sql.RUNS, ("config", "summary"), query, project, params)
    return RunKeys(config=config, summary=summary)


def _find(
    repo: Repository,
    target: sql.Target,
    query: str,
    project: str | None,
    order_by: str | None,
    limit: int | None,
    offset: int,
    params: Params,
) -> list[Any]:
    _check_page(limit, offset)
    search = sql.Search.compile(
        target, repo.catalog.dialect, query, params=params, order_by=order_by
    )
    with repo.catalog.read() as conn:
        name = _readable(conn, project)
        return sql.find(conn, search, project=name, limit=limit, offset=offset)


def _count(
    repo: Repository, target: sql.Target, query: str, project: str | None, params: Params
) -> int:
    search = sql.Search.compile(target, repo.catalog.dialect, query, params=params)
    with repo.catalog.read() as conn:
        name = _readable(conn, project)
        return sql.count(conn, search, project=name)


def _keys(
    repo: Repository,
    target: sql.Target,
    documents: tuple[str, ...],
    query: str,
    project: str | None,
    params: Params,
) -> list[tuple[str, ...]]:
    search = sql.Search.compile(target, repo.catalog.dialect, query, params=params)
    with repo.catalog.read() as conn:
        name = _readable(conn, project)
        return [
            tuple(format_path(path) for path in sql.keys(conn, search, doc, project=name))
            for doc in documents
        ]


def _readable(conn: Any, project: str | None) -> str | None:
    """The project to search in (None: every readable one), if the caller may read it."""
    if project is None:
        return None
    name = check_name(project, kind="project")
    if access.level(conn, name) == access.MISSING:
        raise NotFound(f"project {name!r} not found")
    access.require(conn, name, "read")
    return name


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
    "count_runs",
    "count_versions",
    "run_keys",
    "search_runs",
    "search_versions",
    "version_keys",
]
