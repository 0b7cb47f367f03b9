"""Committing a collection's `Changes` as one version derived from its latest.

Objects are staged first (as for `log_artifact`), then the new manifest is committed
only if the collection's latest is still the version it was built on: a compare-and-swap
under the collection's lock. If another writer committed in between, the changes are
merged onto the new latest when they touch other paths, and the commit is tried again;
if they touch the same paths it is a `Conflict`. No update is lost either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..catalog import access, leases, records
from ..engine.artifact import Artifact
from ..engine.log import commit as commit_version
from ..engine.staging import stage, write_manifest
from ..foundation.errors import Conflict, NotFound
from ..foundation.manifest import Manifest
from .changes import Changes

if TYPE_CHECKING:
    from ..repository import Repository
    from ..run import Run
    from ..version import ArtifactVersion

#: how often a commit is rebuilt on a newer latest before giving up
ATTEMPTS = 50


def _release(repo: Repository, art: Artifact) -> None:
    """Drop the lease a draft holds on its parent (taken by `new_draft`) once it is
    committed or given up, as `log_artifact` does for the drafts it logs."""
    if art._lease is not None:
        with repo.catalog.write() as conn:
            leases.drop(conn, art._lease)
        art._lease = None


def latest(repo: Repository, project: str, name: str) -> ArtifactVersion | None:
    """The collection's latest version; None if it has none (or does not exist yet)."""
    try:
        return repo.artifact(f"{project}/{name}:latest")
    except NotFound:
        return None


def commit(
    repo: Repository, changes: Changes, *, type: str, run: Run | None
) -> ArtifactVersion | None:
    """Commit `changes` as the next version of their collection; returns it (or the
    latest, unchanged, when the changes change nothing; None if there is no version)."""
    project, name = changes.project, changes.name
    with repo.catalog.write() as conn:
        access.require(conn, project, "write")
        try:
            coll = records.collection(conn, project, name)
        except NotFound:
            coll = records.collection(conn, project, name, type=type, create=True)
        namespace = records.namespace(conn, coll.project_id)
    for _ in range(ATTEMPTS):
        now = latest(repo, project, name)
        current = now.manifest if now is not None else Manifest()
        if (now.digest if now is not None else None) != changes.base_digest:
            changes.check_mergeable(current)
        art = now.new_draft() if now is not None else Artifact(name, coll.type)
        try:
            for path, local in changes.files.items():
                art.add_file(local, name=path)
            for entry in changes.entries.values():
                art.add_entry(entry)
            with stage(repo, art, namespace=namespace) as staged:
                manifest = changes.manifest(changes.kept(current), staged.entries)
                if now is not None and manifest.digest == now.digest:
                    return now
                write_manifest(repo, staged, manifest)
                committed = commit_version(
                    repo,
                    art,
                    manifest,
                    project=project,
                    namespace=namespace,
                    run_id=run.id if run is not None else None,
                    after=now.id if now is not None else None,
                    # a write that restores an older state is still the newest version
                    reuse_identical=False,
                )
                if committed is None:
                    continue  # someone committed meanwhile: merge onto theirs and retry
                with repo.catalog.read() as conn:
                    index = records.version_by_id(conn, committed[0]).idx
        finally:
            _release(repo, art)
        return repo.artifact(f"{project}/{name}:v{index}")
    raise Conflict(
        f"cairn://{project}/{name}: other writers kept committing; gave up after "
        f"{ATTEMPTS} attempts, nothing was committed"
    )
