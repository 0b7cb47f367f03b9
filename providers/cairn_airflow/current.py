"""`current_run()`: the cairn run of the running task instance, from anywhere in its code.

    @task
    def train(lr: float) -> str:
        run = current_run(project="demo", config={"lr": lr})
        model, val_acc = fit(lr)
        run.log_summary({"val_acc": val_acc})
        return run.log_artifact(model).ref

One run per task instance (a mapped task: one per map index), resumed by a retry, in
the group of its DAG run (`TaskIdentity`): `repo.search_runs("group = :g", ...)` then
compares the runs of a sweep. Its job type is the task id. The run finishes with the
task: cairn adds callbacks to the running task that mark it finished, failed (also before
a retry) or skipped, and close the repository; `with current_run() as run:` finishes it
at the end of the block instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cairn import CairnError, CurrentRuns, Run

from .hooks.cairn import CairnHook
from .identity import TaskIdentity, task_run

#: the task instances running in this process
RUNS = CurrentRuns("task")


def current_run(
    project: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    cairn_conn_id: str = CairnHook.default_conn_name,
) -> Run:
    """The cairn run of the task instance running now (created on the first call).

    `project` defaults to the repository's default project ($CAIRN_PROJECT, else
    "default"); `config` keys are set on the run (repeated calls may add more).
    """
    context = _context()
    ident = TaskIdentity.from_context(context)
    known = RUNS.get(ident.cairn_run_id, project=project, config=config)
    if known is not None:
        return known
    hook = CairnHook(cairn_conn_id)
    repo = hook.get_repository()
    run = task_run(repo, context, project=project, job_type=ident.task_id, config=config)
    _finish_with(context["task"], run.id)
    return RUNS.add(run, hook.close)


def _context() -> Any:
    from airflow.sdk import get_current_context

    try:
        return get_current_context()
    except Exception as exc:  # no task is running in this process
        raise CairnError(
            "current_run() works inside a running Airflow task; elsewhere use "
            "Repository.run() or cairn_airflow.task_run(repo, context)"
        ) from exc


def _finish_with(task: Any, run_id: str) -> None:
    """Make the task's own state callbacks finish the run and close its repository."""

    def finisher(state: str) -> Any:
        def finish(context: Any) -> None:
            RUNS.finish(run_id, state)

        finish.__name__ = f"cairn_run_{state}"
        return finish

    for kind, state in (
        ("on_success_callback", "finished"),
        ("on_failure_callback", "failed"),
        ("on_retry_callback", "failed"),
        ("on_skipped_callback", "skipped"),
    ):
        setattr(task, kind, [*(getattr(task, kind) or []), finisher(state)])
