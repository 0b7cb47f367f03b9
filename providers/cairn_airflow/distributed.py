"""Distributed versions assembled by a DAG run, safe under retries, clears and re-runs.

Every task of a DAG run upserts its part into the PENDING version named by the DAG run
(`TaskIdentity.dag_run_key`) under its own writer id, so a retried or cleared task
replaces its part instead of adding one; a finishing task commits the version.

Once that version is committed it takes no more parts (DESIGN invariant 7). When the DAG
run is run again (cleared after success, or `dag.test()` of the same logical date), its
writers move to the next *generation* of the id, `KEY#2`, `KEY#3`, ..., which the finishing
task then commits: identical content gives back the version already committed, changed
content a new version. A generation is finished only if every writer of the previous one
wrote again; otherwise the new version would silently lack their parts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cairn import Artifact, ArtifactVersion, Conflict, Finalized, NotFound, Repository, Run

log = logging.getLogger(__name__)

#: generations tried before giving up (a DAG run re-run this often is a loop, not a retry)
MAX_GENERATIONS = 1000
PENDING = "PENDING"
COMMITTED = "COMMITTED"


def generation_id(base: str, generation: int) -> str:
    return base if generation == 1 else f"{base}#{generation}"


def upsert_part(
    run: Run,
    art: Artifact,
    *,
    distributed_id: str | None = None,
    writer_id: str | None = None,
) -> ArtifactVersion:
    """Upsert `art` as this task's part of the DAG run's pending version (or `distributed_id`).

    The writer defaults to the task and its map index (from the run's attributes).
    """
    base = distributed_id or run.group
    writer = writer_id or default_writer(run)
    if not base:  # let the core explain that a distributed id is needed
        return run.upsert_artifact(art, writer_id=writer)
    for generation in range(1, MAX_GENERATIONS + 1):
        try:
            did = generation_id(base, generation)
            return run.upsert_artifact(art, distributed_id=did, writer_id=writer)
        except Finalized:
            continue  # committed by an earlier run of this DAG run: write the next generation
    raise Finalized(f"{art.name}: {base!r} was re-run more than {MAX_GENERATIONS} times")


def finish_version(
    repo: Repository,
    run: Run,
    art: Artifact,
    *,
    distributed_id: str | None = None,
    aliases: Sequence[str] = (),
) -> ArtifactVersion:
    """Commit the newest pending generation of the DAG run's version (or `distributed_id`).

    If the newest generation is already committed, only the finishing task is being run
    again: it returns the version it committed before (with `aliases` applied).
    """
    base = distributed_id or run.group
    if not base:  # let the core explain that a distributed id is needed
        return run.finish_artifact(art, aliases=list(aliases))
    gens = generations(repo, f"{run.project}/{art.name}", base)
    if not gens:  # nothing was upserted: the core says so in its own words
        return run.finish_artifact(art, distributed_id=base, aliases=list(aliases))
    newest = gens[-1]
    if newest.state == PENDING:
        if len(gens) > 1:
            check_rewritten(gens[-2], newest, run)
        return run.finish_artifact(art, distributed_id=newest.distributed_id, aliases=list(aliases))
    return _finished_before(run, art, aliases)


def generations(repo: Repository, collection: str, base: str) -> list[ArtifactVersion]:
    """The versions of `collection` made for `base` and its re-runs, oldest first."""
    try:
        versions = repo.versions(collection, include_deleted=True)
    except NotFound:
        return []
    found = {}
    for v in versions:
        did = v.distributed_id or ""
        if did == base:
            found[1] = v
        elif did.startswith(f"{base}#") and did[len(base) + 1 :].isdigit():
            found[int(did[len(base) + 1 :])] = v
    return [found[g] for g in sorted(found)]


def check_rewritten(previous: ArtifactVersion, pending: ArtifactVersion, run: Run) -> None:
    """Refuse to commit a re-run in which some writers of the previous generation did
    not write again: their parts would be missing from the new version."""
    before = {r.id: r for r in previous.contributors() if r.id != run.id}
    now = {r.id for r in pending.contributors()}
    missing = sorted((r.name or r.id) for rid, r in before.items() if rid not in now)
    if missing:
        raise Conflict(
            f"cannot finish {pending.project}/{pending.name} for {pending.distributed_id}: "
            f"this DAG run already committed its version, and in this re-run "
            f"{len(missing)} of its {len(before)} writers did not write their part again "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); clear every "
            "upsert task of the run (or the whole run), or give the run a new distributed_id"
        )


def default_writer(run: Run) -> str:
    attrs = run.attributes
    if "task_id" not in attrs:
        return run.id
    index = int(attrs.get("map_index", -1))
    return attrs["task_id"] if index < 0 else f"{attrs['task_id']}[{index}]"


def _finished_before(run: Run, art: Artifact, aliases: Sequence[str]) -> ArtifactVersion:
    """The version this (finishing) run committed earlier, aliases re-applied."""
    mine = [
        v
        for v in run.logged_artifacts()
        if v.name == art.name and v.project == run.project and v.state == COMMITTED
    ]
    if not mine:
        raise Finalized(
            f"{run.project}/{art.name} for {run.group} was already finished by another task; "
            "re-run the upsert tasks too to make a new version"
        )
    v = max(mine, key=lambda x: x.index or 0)
    if art.has_files() or art.entries:
        log.warning("%s is already committed: the finishing files were not added", v.ref)
    if set(aliases) - set(v.aliases):
        v.aliases = [*v.aliases, *aliases]
        v.save()
    return v
