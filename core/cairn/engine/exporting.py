"""What an export copies: a version, a collection or a project, read from the source
catalog with everything that goes with it (docs/EXPORT.md).

A selection is plain data: the projects (visibility and members), each committed
version (number, type, manifest, description, metadata, aliases, store namespace,
logging run) and the runs and edges of its lineage. `cairn.export` writes it into
another repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ..catalog import access, records
from ..catalog.schema import collections, projects, runs, usages, versions
from ..foundation.errors import NotFound
from ..foundation.manifest import Manifest
from ..foundation.names import LATEST, Ref, check_name
from ..foundation.projects import ProjectInfo


@dataclass(frozen=True)
class VersionCopy:
    """One committed version as the target gets it."""

    source_id: int
    project: str
    collection: str
    type: str
    index: int
    manifest: Manifest
    description: str | None
    metadata: dict[str, Any]
    namespace: str
    created_at: datetime
    run_id: str | None
    #: user aliases (`latest` follows the newest version in the target by itself)
    aliases: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.collection}:v{self.index}"


@dataclass(frozen=True)
class RunCopy:
    id: str
    project: str
    name: str | None
    job_type: str | None
    group: str | None
    kind: str
    attributes: dict[str, Any]
    config: dict[str, Any]
    summary: dict[str, Any]
    state: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Selection:
    projects: tuple[ProjectInfo, ...]
    versions: tuple[VersionCopy, ...]
    runs: tuple[RunCopy, ...]
    #: (run id, source version id): version -used by-> run
    usages: tuple[tuple[str, int], ...]


def select_for_export(conn: Connection, what: str, *, default_project: str) -> Selection:
    """`project` (every collection), `project/name` (every committed version) or a ref
    with a version (`project/name:v3`, `:alias`): one version."""
    if "/" not in what and ":" not in what:
        project = check_name(what, kind="project")
        access.require(conn, project, "read")
        pid = records.project(conn, project).id
        rows = _committed(conn, select(collections.c.id).where(collections.c.project_id == pid))
        project_runs = [
            r.id for r in conn.execute(select(runs.c.id).where(runs.c.project_id == pid))
        ]
    else:
        ref = Ref.parse(what, default_project=default_project)
        project = ref.project
        access.require(conn, project, "read")
        if ":" in what:
            rows = [records.resolve(conn, ref)]
        else:
            coll = records.collection(conn, project, ref.name)
            rows = _committed(conn, select(collections.c.id).where(collections.c.id == coll.id))
        project_runs = []
    if not rows:
        raise NotFound(f"{what} has no committed version to export")
    tags = records.aliases_of(conn, [r.id for r in rows])
    copies = tuple(
        VersionCopy(
            source_id=r.id,
            project=r.project,
            collection=r.collection,
            type=r.type,
            index=int(r.idx),
            manifest=records.load_manifest_whole(conn, r.digest),
            description=r.description,
            metadata=dict(r.metadata or {}),
            namespace=r.namespace,
            created_at=r.created_at,
            run_id=r.run_id,
            aliases=tuple(a for a in tags[r.id] if a != LATEST),
        )
        for r in sorted(rows, key=lambda r: (r.project, r.collection, r.idx))
    )
    ids = [v.source_id for v in copies]
    edges = tuple(
        (run_id, version_id)
        for run_id, version_id in conn.execute(
            select(usages.c.run_id, usages.c.version_id).where(usages.c.version_id.in_(ids))
        )
    )
    wanted = {v.run_id for v in copies if v.run_id} | {e[0] for e in edges} | set(project_runs)
    return Selection(
        projects=(access.project_info(conn, project),),
        versions=copies,
        runs=_runs(conn, wanted),
        usages=edges,
    )


def _committed(conn: Connection, collection_ids: Any) -> list[Any]:
    q = records.version_query().where(
        versions.c.collection_id.in_(collection_ids), versions.c.state == records.COMMITTED
    )
    return list(conn.execute(q))


def _runs(conn: Connection, ids: set[str]) -> tuple[RunCopy, ...]:
    if not ids:
        return ()
    q = (
        select(runs, projects.c.name.label("project"))
        .join(projects, projects.c.id == runs.c.project_id)
        .where(runs.c.id.in_(sorted(ids)))
        .order_by(runs.c.created_at, runs.c.id)
    )
    return tuple(
        RunCopy(
            id=r.id,
            project=r.project,
            name=r.name,
            job_type=r.job_type,
            group=r.group_name,
            kind=r.kind,
            attributes=dict(r.attributes or {}),
            config=dict(r.config or {}),
            summary=dict(r.summary or {}),
            state=r.state,
            created_at=r.created_at,
            finished_at=r.finished_at,
        )
        for r in conn.execute(q)
    )


__all__ = ["RunCopy", "Selection", "VersionCopy", "select_for_export"]
