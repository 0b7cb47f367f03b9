"""Prefect tasks that log, use, upsert and finish cairn versions.

Each task opens the repository of a `CairnRepository` block (or the embedded default),
records the work under a cairn run named after the current task run, and returns plain
data: a version ref, a local path, or a small dict describing an upserted part.

Distributed versions: `upsert_artifact.map(...)` adds one part per task run to the PENDING
version of the flow run (the default `distributed_id`); `finish_artifact` commits it. The
writer id is the task's name and what it upserts (local paths, collection, prefix), so a
retried task run, and the task runs of a retried or re-run flow run, replace the part an
earlier attempt wrote instead of adding a second one. A task that wraps the logic in its
own retried task should call `upsert_artifact.fn(...)` so the part belongs to that task run.

Assets and events: a task that commits a version materializes the Prefect asset
`cairn://project/name` of its collection, `use_artifact` references it (assets.py), and
every change the tasks make is also sent as a Prefect event of cairn's name
(`cairn.version.committed`, `cairn.alias.moved`, ...; events.py), for triggers.

The tasks never answer from Prefect's cache (they have side effects), and a CairnError
fails them at once even with retries set: retrying cannot fix a bad ref or a conflict.
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from cairn import (
    Artifact,
    ArtifactVersion,
    CairnError,
    NotFound,
    Ref,
    Repository,
    Run,
    format_size,
)

from . import assets, events, links, summary
from .blocks import CairnRepository, repository_block
from .identity import PrefectIdentity

#: a block, the name of a saved block, or None for the embedded default
RepositoryArg = CairnRepository | str | None
#: one local file or folder, or several
Paths = str | os.PathLike | Sequence[str | os.PathLike] | None


class Part(TypedDict):
    """What `upsert_artifact` returns: enough to find, and account for, the part."""

    collection: str
    distributed_id: str | None
    writer_id: str
    files: int
    new_bytes: int | None


def _retry_unless_cairn_error(task: Any, task_run: Any, state: Any) -> bool:
    """A CairnError (bad ref, missing file, conflict, nothing to finish) fails the task at
    once even if it has retries: retrying cannot fix the data. Other errors are retried."""
    return not isinstance(state.data, CairnError)


@task(cache_policy=NO_CACHE, retry_condition_fn=_retry_unless_cairn_error)
def log_artifact(
    path: Paths = None,
    *,
    name: str,
    type: str = "dataset",
    project: str | None = None,
    prefix: str | None = None,
    aliases: Sequence[str] = (),
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    incremental: bool = False,
    remove: Sequence[str] = (),
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    repository: RepositoryArg = None,
) -> str:
    """Log files and folders as the next version of `name`; returns its ref (`demo/x:v3`).

    `prefix` is the folder inside the artifact the paths land in. `incremental=True` starts
    from the collection's latest version (if it has one) so only what changed is hashed and
    stored; `remove` drops paths (or folders) from it, skipping absent ones. Identical
    content returns the existing version. Publishes a table artifact summarising the version.
    `config` is set on the task run's cairn run, `metrics` logged to its summary.
    """
    block = repository_block(repository)
    with _cairn_run(block, project, config, metrics) as (repo, run):
        art = _start(run, name, type) if incremental else Artifact(name, type)
        if description is not None:
            art.description = description
        art.metadata.update(metadata or {})
        _add(art, path, prefix)
        for p in remove:
            try:
                art.remove(p)
            except NotFound:  # already gone: a re-run, or removed on an earlier day
                _logger().warning("nothing to remove at %r in %s: skipped", p, name)
        v = run.log_artifact(art, aliases=list(aliases))
        assets.materialized(repo, v, ui_url=block.ui_url)
        _commit_summary(repo, run, v, new_bytes=_sent(v))
        links.publish(block.ui_url, v, verb="logged")
        return v.ref


@task(cache_policy=NO_CACHE, retry_condition_fn=_retry_unless_cairn_error)
def use_artifact(
    ref: str,
    *,
    root: str | os.PathLike | None = None,
    path: str | None = None,
    download: bool = True,
    repository: RepositoryArg = None,
) -> str:
    """Record that this task run uses `ref` and return it as local data.

    Returns the folder the version was checked out to (`root`, default
    ./artifacts/PROJECT/NAME/vN; an earlier checkout there is updated in place), or with
    `path` the local copy of that one file, or with `download=False` the exact ref
    (`demo/x:v3`) the given ref resolved to.
    """
    block = repository_block(repository)
    with _open(block) as repo:
        project = Ref.parse(ref, default_project=repo.default_project).project
        with _run(repo, project) as run:
            v = run.use_artifact(ref)
            assets.referenced(repo, [v])
            _logger().info("using %s (%d files, %s)", v.ref, v.file_count, format_size(v.size))
            links.publish(block.ui_url, v, verb="used")
            if path is not None:
                return str(v.get_path(path))
            if not download:
                return v.ref
            return str(Path(v.download(root=root)).resolve())


@task(cache_policy=NO_CACHE, retry_condition_fn=_retry_unless_cairn_error)
def upsert_artifact(
    path: Paths,
    *,
    name: str,
    type: str = "dataset",
    project: str | None = None,
    prefix: str | None = None,
    distributed_id: str | None = None,
    writer_id: str | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    repository: RepositoryArg = None,
) -> Part:
    """Add this task run's files as a part of a PENDING version (use with `.map`).

    `distributed_id` defaults to the flow run; `writer_id` to this task and its inputs, so
    a retry of the task run or of the flow run replaces the part (two task runs upserting
    the same local paths under the same prefix are one writer: give them distinct
    `writer_id`s if those paths hold different files, e.g. on different machines). Pass
    `unmapped(block)` or the block's name as `repository` when mapping. Nothing is
    visible until `finish_artifact` commits the version. `config` and `metrics` go to
    this task run's cairn run, as for `log_artifact`.
    """
    with _cairn_run(repository, project, config, metrics) as (_, run):
        art = Artifact(name, type)
        _add(art, path, prefix)
        identity = PrefectIdentity.current()
        writer = writer_id or identity.writer_id(_paths(path), run.project, name, type, prefix)
        v = run.upsert_artifact(art, distributed_id=distributed_id, writer_id=writer)
        files = v.last_log.files if v.last_log else 0
        _logger().info(
            "upserted %d files into %s/%s (%s) as writer %s",
            files,
            v.project,
            v.name,
            v.distributed_id,
            writer,
        )
        return Part(
            collection=f"{v.project}/{v.name}",
            distributed_id=v.distributed_id,
            writer_id=writer,
            files=files,
            new_bytes=_sent(v),
        )


@task(cache_policy=NO_CACHE, retry_condition_fn=_retry_unless_cairn_error)
def finish_artifact(
    path: Paths = None,
    *,
    name: str,
    type: str = "dataset",
    project: str | None = None,
    prefix: str | None = None,
    distributed_id: str | None = None,
    aliases: Sequence[str] = (),
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    parts: Sequence[Part] | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    repository: RepositoryArg = None,
) -> str:
    """Commit the PENDING version `distributed_id` (default: the flow run); returns its ref.

    `path` adds files of the finishing task itself. Pass the upserts' results as `parts`
    (`parts=futures.result()`, which raises if a part failed: a task whose upstream failed
    is skipped, and the flow would otherwise complete without committing); the summary
    then counts the bytes the parts stored. `config` and `metrics` go to this task run's
    cairn run, as for `log_artifact`.
    """
    block = repository_block(repository)
    with _cairn_run(block, project, config, metrics) as (repo, run):
        art = Artifact(name, type, description=description, metadata=metadata)
        _add(art, path, prefix)
        # a retry whose earlier attempt committed gets that version back from cairn
        v = run.finish_artifact(art, distributed_id=distributed_id, aliases=list(aliases))
        assets.materialized(repo, v, ui_url=block.ui_url)
        _commit_summary(repo, run, v, new_bytes=_total_sent(v, parts))
        links.publish(block.ui_url, v, verb="committed")
        return v.ref


# -- helpers ------------------------------------------------------------------------------


# Opening a new catalog migrates it with Alembic, whose module-global context is not
# thread-safe: mapped tasks on the thread-pool runner open one at a time (a workaround
# until cairn serialises its own migrations).
_OPEN_LOCK = threading.Lock()


@contextmanager
def _open(repository: RepositoryArg) -> Iterator[Repository]:
    block = repository_block(repository)
    with _OPEN_LOCK:
        repo = block.get_repository()
    events.subscribe(repo)  # its changes become Prefect events
    with repo:
        yield repo


@contextmanager
def _run(
    repo: Repository, project: str | None, config: dict[str, Any] | None = None
) -> Iterator[Run]:
    """A cairn run for the current task run: finished on success, failed on error; a retry
    of the task run reuses it."""
    kwargs = PrefectIdentity.current().run_kwargs()
    with repo.run(project=project, config=config, **kwargs) as run:
        yield run


@contextmanager
def _cairn_run(
    repository: RepositoryArg,
    project: str | None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Iterator[tuple[Repository, Run]]:
    """The repository and the task run's cairn run; `metrics` go to the run's summary
    once the work inside succeeded."""
    with _open(repository) as repo, _run(repo, project, config) as run:
        yield repo, run
        if metrics:
            run.log_summary(metrics)


def _start(run: Run, name: str, type: str) -> Artifact:
    """A draft of the collection's latest version (recorded as used), or a new artifact."""
    try:
        latest = run.use_artifact(f"{name}:latest")
    except NotFound:
        return Artifact(name, type)
    return latest.new_draft()


def _paths(path: Paths) -> list[str]:
    """The local paths given, as absolute paths."""
    if path is None:
        return []
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return [os.path.abspath(os.fspath(p)) for p in paths]


def _add(art: Artifact, path: Paths, prefix: str | None) -> None:
    folder = (prefix or "").strip("/") or None
    for p in _paths(path):
        if os.path.isdir(p):
            art.add_dir(p, name=folder)
        else:
            base = os.path.basename(p)
            art.add_file(p, name=posixpath.join(folder, base) if folder else base)


def _sent(v: ArtifactVersion) -> int | None:
    """Bytes the call that returned `v` newly stored, if cairn reported them."""
    return v.last_log.bytes_sent if v.last_log is not None else None


def _total_sent(v: ArtifactVersion, parts: Sequence[Part] | None) -> int | None:
    """New bytes of a distributed version: its parts' plus the finishing task's own."""
    own = _sent(v)
    if parts is None or own is None:
        return None
    sent = [p.get("new_bytes") for p in parts]
    if any(s is None for s in sent):
        return None
    return own + sum(s for s in sent if s is not None)


def _commit_summary(
    repo: Repository, run: Run, v: ArtifactVersion, *, new_bytes: int | None
) -> None:
    created = v.created
    if created is None:  # not reported: new if this run logged it (or an earlier try of it)
        logged_by = v.logged_by()
        created = logged_by is not None and logged_by.id == run.id
    summary.publish(repo, v, created=created, new_bytes=new_bytes)
    if created:
        _logger().info("committed %s: %d files, %s", v.ref, v.file_count, format_size(v.size))
    else:
        _logger().info("content identical to %s: no new version", v.ref)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a flow or task run (e.g. `.fn`)
        return logging.getLogger("cairn_prefect")
