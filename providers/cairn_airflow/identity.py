"""Who is running: a task instance as cairn's lineage sees it.

A task instance (dag_id, task_id, run_id, map_index) maps to one cairn run whose id is
derived from those four values, so a retry (a new try_number) resumes the same run instead
of adding one. The DAG run is the run's group, hence the default `distributed_id` of the
parts its tasks upsert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cairn import Repository, Run

#: distributed ids are at most 256 characters; longer DAG-run keys are hashed
_MAX_KEY = 200


@dataclass(frozen=True)
class TaskIdentity:
    """The lineage identity of one task instance."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1

    @classmethod
    def from_context(cls, context: Any) -> TaskIdentity:
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        return cls(ti.dag_id, ti.task_id, ti.run_id, map_index, ti.try_number or 1)

    @property
    def cairn_run_id(self) -> str:
        """Stable across tries: a retried task instance resumes its cairn run."""
        key = "\x1f".join((self.dag_id, self.task_id, self.run_id, str(self.map_index)))
        return "airflow-" + hashlib.sha256(key.encode()).hexdigest()[:40]

    @property
    def dag_run_key(self) -> str:
        """The DAG run as a distributed id: every task of the run shares it."""
        key = f"airflow:{self.dag_id}:{self.run_id}"
        if len(key) > _MAX_KEY:
            key = "airflow:" + hashlib.sha256(key.encode()).hexdigest()[:40]
        return key

    @property
    def writer_id(self) -> str:
        """The task and its map index: a retried mapped task replaces its own part."""
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"

    @property
    def run_name(self) -> str:
        return f"{self.dag_id}.{self.writer_id}"

    def attributes(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
        }


def task_run(
    repo: Repository,
    context: Any = None,
    *,
    project: str | None = None,
    job_type: str = "airflow-task",
    config: Mapping[str, Any] | None = None,
    report_lineage: bool = True,
) -> Run:
    """The cairn run of the current task instance; use it as a context manager.

    `config` keys are set on the run (`config.<key>` in `search_runs`). With
    `report_lineage`, the versions the run used and wrote are reported to Airflow's
    hook-level lineage collector when the task ends, for OpenLineage (`lineage.collector`).

    From a TaskFlow task:

        @task(outlets=[asset_for("demo", "features")])
        def features():
            repo = CairnHook().get_repository()
            with task_run(repo, project="demo") as run:
                raw = run.use_artifact("raw:latest").download()
                v = run.log_artifact(build_features(raw))
            record_asset_event(v)
            return v.ref
    """
    if context is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
    ident = TaskIdentity.from_context(context)
    run = repo.run(
        project=project,
        name=ident.run_name,
        job_type=job_type,
        group=ident.dag_run_key,
        kind="airflow",
        run_id=ident.cairn_run_id,
        attributes=ident.attributes(),
        config=config,
    )
    if report_lineage:
        from .lineage.collector import report_with_task

        report_with_task(context["task"], run)
    return run
