"""Operators that log, use, upsert and finish cairn artifact versions.

Each runs as the task instance's cairn run (`identity.task_run`), returns what downstream
tasks need through XCom, and fails with cairn's own one-line message on a `CairnError`.
The operators that make a version (log, finish) declare the collection's asset
`cairn://project/name` as an outlet and put the version and digest in the event's extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseOperator

from cairn import Artifact, ArtifactVersion, NotFound, Run, format_size

from ..assets import outlet_for, record_asset_event
from ..distributed import finish_version, upsert_part
from ..errors import task_errors
from ..hooks.cairn import CairnHook
from ..identity import task_run
from ..lineage.operator import OpenLineageMixin, collection_of
from ..links import REF_ATTRIBUTE, CairnVersionLink

Paths = str | Sequence[str] | None


class CairnBaseOperator(OpenLineageMixin, BaseOperator):
    """The hook, the task instance's cairn run, error translation and OpenLineage facets
    (`lineage.operator`), shared by all.

    :param config: set on the task's cairn run (`config.<key>` in `search_runs`)
    :param metrics: logged to the run's summary once the work succeeded
        (`summary.<key>`); both templated
    """

    job_type: ClassVar[str] = "airflow-task"

    def __init__(
        self,
        *,
        project: str = "default",
        cairn_conn_id: str = CairnHook.default_conn_name,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.project = project
        self.cairn_conn_id = cairn_conn_id
        self.config = config
        self.metrics = metrics

    @cached_property
    def hook(self) -> CairnHook:
        return CairnHook(self.cairn_conn_id)

    @contextmanager
    def cairn_run(self, context: Any) -> Iterator[Run]:
        """The cairn run of this task instance; a CairnError inside fails the task."""
        try:
            with task_errors():
                repo = self.hook.get_repository()
                with task_run(
                    repo,
                    context,
                    project=self.project,
                    job_type=self.job_type,
                    config=self.config,
                    report_lineage=False,  # the operator reports its own (lineage.operator)
                ) as run:
                    yield run
                    if self.metrics:
                        run.log_summary(self.metrics)
        finally:
            self.hook.close()


class VersionOperator(CairnBaseOperator):
    """What the operators that make a version share: the collection, the files to add,
    the version's aliases, metadata and description, and the asset event it emits."""

    def __init__(
        self,
        *,
        name: str,
        type: str = "dataset",
        paths: Paths = None,
        prefix: str | None = None,
        aliases: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        description: str | None = None,
        project: str = "default",
        **kwargs: Any,
    ):
        super().__init__(project=project, **with_outlet(kwargs, project, name))
        self.name = name
        self.type = type
        self.paths = paths
        self.prefix = prefix
        self.aliases = aliases
        self.metadata = metadata
        self.description = description

    operator_extra_links = (CairnVersionLink(),)

    def planned_outputs(self) -> Sequence[tuple[str, str]]:
        return [(self.project, self.name)]

    def announce(self, context: Any, v: ArtifactVersion, verb: str) -> str:
        """Log the version, attach it to the outlet's asset event, return its ref."""
        sent = f", {format_size(v.last_log.bytes_sent)} newly stored" if v.last_log else ""
        files = f"{v.file_count} file" + ("" if v.file_count == 1 else "s")
        self.log.info("%s %s: %s, %s%s", verb, v.ref, files, format_size(v.size), sent)
        record_asset_event(v, context)
        setattr(self, REF_ATTRIBUTE, v.ref)  # for the "cairn version" link
        return v.ref


class LogArtifactOperator(VersionOperator):
    """Log local files and folders as the next version of collection `name`.

    :param paths: local files or folders (folders are added recursively)
    :param prefix: folder inside the artifact to put them under (default: its root)
    :param incremental: start from the collection's newest version, if it has one: only
        what `paths` add or replace and what `remove` drops is new
    :param remove: paths or folders to drop from that starting version (absent ones are
        skipped, so a re-run of the task does the same thing)
    :returns: (XCom) the version's ref, `project/name:vN`
    """

    template_fields: Sequence[str] = (
        "name",
        "project",
        "paths",
        "prefix",
        "remove",
        "aliases",
        "metadata",
        "description",
        "config",
        "metrics",
    )
    job_type = "log_artifact"

    def __init__(
        self,
        *,
        paths: Paths,
        incremental: bool = False,
        remove: Sequence[str] = (),
        **kwargs: Any,
    ):
        super().__init__(paths=paths, **kwargs)
        self.incremental = incremental
        self.remove = remove

    def execute(self, context: Any) -> str:
        with self.cairn_run(context) as run:
            v = run.log_artifact(self._artifact(run), aliases=list(self.aliases or ()))
            self.record_output(v)
        return self.announce(context, v, "logged")

    def planned_inputs(self) -> Sequence[tuple[str, str]]:
        return [(self.project, self.name)] if self.incremental else []

    def _artifact(self, run: Run) -> Artifact:
        base = _newest(run, self.name) if self.incremental else None
        if base is None:
            art = Artifact(self.name, self.type)
        else:
            self.log.info("starting from %s", base.ref)
            self.record_input(base)
            art = base.new_draft()
        if self.description is not None:
            art.description = self.description
        art.metadata.update(self.metadata or {})
        add_paths(art, self.paths, self.prefix)
        for path in as_list(self.remove):
            try:
                art.remove(path)
            except NotFound:
                self.log.info("%s is not in the artifact: nothing to remove", path)
        return art


class UseArtifactOperator(CairnBaseOperator):
    """Fetch a version (verified, from the local cache when possible) and record its use.

    :param ref: `project/name:alias`, `project/name:v3`, or `name:alias` in `project`
    :param path: one file inside the artifact: return its local path instead of a folder
    :param root: where to place the files (default: under $CAIRN_HOME/checkouts)
    :returns: (XCom) the local folder (or file) path; the exact ref is pushed as `ref`
    """

    template_fields: Sequence[str] = ("ref", "path", "root", "project", "config", "metrics")
    job_type = "use_artifact"
    operator_extra_links = (CairnVersionLink(),)

    def __init__(
        self,
        *,
        ref: str,
        path: str | None = None,
        root: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.ref = ref
        self.path = path
        self.root = root

    def execute(self, context: Any) -> str:
        with self.cairn_run(context) as run:
            v = run.use_artifact(self.ref)
            self.record_input(v)
            local = v.get_path(self.path) if self.path else v.download(self._root(v))
        self.log.info("using %s at %s", v.ref, local)
        context["ti"].xcom_push(key="ref", value=v.ref)
        setattr(self, REF_ATTRIBUTE, v.ref)  # for the "cairn version" link
        return str(local)

    def planned_inputs(self) -> Sequence[tuple[str, str]]:
        return collection_of(self.ref, self.project)

    def _root(self, v: ArtifactVersion) -> str:
        if self.root:
            return self.root
        home = self.hook.get_repository().home
        return os.path.join(home, "checkouts", v.project, v.name, v.version)


class UpsertArtifactOperator(CairnBaseOperator):
    """Add a file or folder as this task's part of a distributed version.

    Built for dynamic task mapping: `UpsertArtifactOperator.partial(task_id=..., name=...)
    .expand(path=[...])`. Parts go to the DAG run's pending version (or `distributed_id`)
    under the writer `task_id[map_index]`, so a retried task replaces its own part; a
    `FinishArtifactOperator` commits the version.

    :returns: (XCom) the distributed id the part went to
    """

    template_fields: Sequence[str] = (
        "name",
        "project",
        "path",
        "prefix",
        "distributed_id",
        "writer_id",
        "config",
        "metrics",
    )
    job_type = "upsert_artifact"

    def __init__(
        self,
        *,
        name: str,
        path: str,
        type: str = "dataset",
        prefix: str | None = None,
        distributed_id: str | None = None,
        writer_id: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.name = name
        self.type = type
        self.path = path
        self.prefix = prefix
        self.distributed_id = distributed_id
        self.writer_id = writer_id

    def execute(self, context: Any) -> str:
        with self.cairn_run(context) as run:
            art = add_paths(Artifact(self.name, self.type), self.path, self.prefix)
            v = upsert_part(run, art, distributed_id=self.distributed_id, writer_id=self.writer_id)
            self.record_output(v)
        self.log.info("upserted %s into %s/%s (%s)", self.path, v.project, v.name, v.distributed_id)
        return v.distributed_id or ""

    def planned_outputs(self) -> Sequence[tuple[str, str]]:
        return [(self.project, self.name)]


class FinishArtifactOperator(VersionOperator):
    """Commit the DAG run's distributed version (or `distributed_id`) of collection `name`.

    :param paths: files or folders the finishing task adds itself (optional)
    :returns: (XCom) the committed version's ref, `project/name:vN`
    """

    template_fields: Sequence[str] = (
        "name",
        "project",
        "paths",
        "prefix",
        "distributed_id",
        "aliases",
        "metadata",
        "description",
        "config",
        "metrics",
    )
    job_type = "finish_artifact"

    def __init__(self, *, distributed_id: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.distributed_id = distributed_id

    def execute(self, context: Any) -> str:
        with self.cairn_run(context) as run:
            art = Artifact(
                self.name, self.type, description=self.description, metadata=self.metadata
            )
            add_paths(art, self.paths, self.prefix)
            v = finish_version(
                self.hook.get_repository(),
                run,
                art,
                distributed_id=self.distributed_id,
                aliases=list(self.aliases or ()),
            )
            self.record_output(v)
        return self.announce(context, v, "committed")


# -- shared by the operators ----------------------------------------------------------------


def as_list(paths: Paths) -> list[str]:
    if not paths:
        return []
    return [paths] if isinstance(paths, str | os.PathLike) else [os.fspath(p) for p in paths]


def add_paths(art: Artifact, paths: Paths, prefix: str | None) -> Artifact:
    """Add each local file (as `prefix/its name`) or folder (its content under `prefix`)."""
    for path in as_list(paths):
        if os.path.isdir(path):
            art.add_dir(path, name=prefix or None)
        else:  # the core reports a missing file in its own words
            name = os.path.basename(path)
            art.add_file(path, name=f"{prefix.rstrip('/')}/{name}" if prefix else name)
    return art


def with_outlet(kwargs: dict[str, Any], project: str, name: str) -> dict[str, Any]:
    """`kwargs` with the collection's asset (or alias, if templated) among the outlets."""
    outlets = kwargs.get("outlets") or []
    outlets = list(outlets) if isinstance(outlets, list | tuple) else [outlets]
    own = outlet_for(project, name)
    if own not in outlets:
        outlets.append(own)
    return {**kwargs, "outlets": outlets}


def _newest(run: Run, name: str) -> ArtifactVersion | None:
    """The collection's latest version, recorded as used by `run`; None if it has none."""
    try:
        return run.use_artifact(f"{run.project}/{name}:latest")
    except NotFound:
        return None
