"""cairn collections as Prefect assets: `cairn://project/name`, one asset per collection.

A task that commits a version materializes its collection's asset; a task that uses a
version references it. Which collection a task writes is known only once it runs (its
`name` and `project` are parameters, the project may come from the block), so the cairn
tasks declare their assets on the running task run's asset context, exactly what
`@materialize(...)` and `asset_deps=[...]` declare ahead of time; Prefect then emits
its asset events when the task run completes:

    prefect.asset.materialization.succeeded   resource cairn://demo/model (name,
        description, owners, url), payload: the version's ref, digest, aliases, ...;
        related: every asset the task read, upstream tasks' included
    prefect.asset.referenced                  each such upstream asset

A `use_artifact` task's asset flows on to the tasks consuming its result, so a flow that
uses `demo/raw` and logs `demo/features` draws the edge raw -> features in Prefect's
asset graph, across flows. `log_artifact.with_options(asset_deps=[...])` adds others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.assets import Asset, AssetProperties, add_asset_metadata
from prefect.context import AssetContext

from cairn import ArtifactVersion, Repository
from cairn.ui import links

SCHEME = "cairn"
#: the tool Prefect names as having materialized the assets
MATERIALIZED_BY = "cairn"
_DESCRIBED = 2500  # what Prefect keeps of an asset's description


def asset_key(project: str, name: str) -> str:
    """The asset key of a collection: `cairn://project/name`."""
    return f"{SCHEME}://{project}/{name}"


def asset(repo: Repository, v: ArtifactVersion, *, ui_url: str | None = None) -> Asset:
    """The collection's asset, its properties read from the catalog: name `project/name`,
    the version's description, owners (the version's `owners` metadata, else the
    project's admins) and the collection's page in the cairn UI if there is one."""
    props: dict[str, Any] = {
        "name": f"{v.project}/{v.name}",
        "description": (v.description or f"cairn {v.type} {v.project}/{v.name}")[:_DESCRIBED],
    }
    owners = _owners(repo, v)
    if owners:
        props["owners"] = owners
    if ui_url:
        props["url"] = links.url(ui_url, links.collection(v.project, v.name))
    return Asset(key=asset_key(v.project, v.name), properties=AssetProperties(**props))


def version_metadata(v: ArtifactVersion) -> dict[str, Any]:
    """What a materialization event's payload says about the version."""
    return {
        "ref": v.ref,
        "version": v.version,
        "digest": v.digest,
        "aliases": sorted(v.aliases),
        "files": v.file_count,
        "bytes": v.size,
    }


def materialized(repo: Repository, v: ArtifactVersion, *, ui_url: str | None = None) -> None:
    """Declare that the running task materialized `v`'s collection (nothing outside a
    task run)."""
    ctx = AssetContext.get()
    if ctx is None:
        return
    a = asset(repo, v, ui_url=ui_url)
    # one asset per key: the properties read now replace any declared ahead of time
    for old in [d for d in ctx.downstream_assets if d.key == a.key]:
        ctx.downstream_assets.remove(old)
    ctx.downstream_assets.add(a)
    ctx.materialized_by = ctx.materialized_by or MATERIALIZED_BY
    ctx.update_tracked_assets()
    add_asset_metadata(a.key, version_metadata(v))


def referenced(repo: Repository, versions: Sequence[ArtifactVersion]) -> None:
    """Declare that the running task read these versions' collections: upstream of what
    it materializes, and of what the tasks consuming its result materialize."""
    ctx = AssetContext.get()
    if ctx is None or not versions:
        return
    ctx.direct_asset_dependencies.update(asset(repo, v) for v in versions)
    ctx.update_tracked_assets()


def _owners(repo: Repository, v: ArtifactVersion) -> list[str]:
    declared = v.metadata.get("owners")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list) and all(isinstance(o, str) for o in declared):
        return list(declared)
    info = repo.project(v.project)
    return [m.principal for m in info.members if m.role == "admin"]
