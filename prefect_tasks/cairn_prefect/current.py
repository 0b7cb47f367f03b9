"""`current_run()`: the cairn run of the running Prefect task run, from anywhere in its code.

    @task
    def train(lr: float) -> str:
        run = current_run(project="demo", config={"lr": lr})
        model, val_acc = fit(lr)
        run.log_summary({"val_acc": val_acc})
        return run.log_artifact(model).ref

One run per task run (a `.map`ped task: one per mapped task run), kept across the task's
retries, in the group of its flow run (`PrefectIdentity`), so
`repo.search_runs("group = :g", ...)` compares the runs of a sweep. Its job type is the
task's name. Called in a flow (outside any task), it is the flow run's run.

The run finishes with the task run (or flow run): cairn adds a completion and a failure
hook to the running task (once per task object) that mark the run finished or failed and
close its repository. `with current_run() as run:` finishes it at the end of the block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cairn import VERSION_COMMITTED, CairnError, CurrentRuns, Run

from . import assets, events
from .blocks import CairnRepository, repository_block
from .identity import PrefectIdentity

#: the task runs (and flow runs) running in this process
RUNS = CurrentRuns("task run")
_HOOKED = "_cairn_finishes_runs"


def current_run(
    project: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    repository: CairnRepository | str | None = None,
) -> Run:
    """The cairn run of the task run (or flow run) running now, created on the first call.

    `project` defaults to the block's or the repository's default project; `config` keys
    are set on the run (repeated calls may add more); `repository` is a block, a saved
    block's name, or None for the embedded default.
    """
    ident = PrefectIdentity.current()
    if ident.run_id is None:
        raise CairnError(
            "current_run() works inside a Prefect task run or flow run; elsewhere use "
            "Repository.run()"
        )
    known = RUNS.get(ident.run_id, project=project, config=config)
    if known is not None:
        return known
    repo = repository_block(repository).get_repository()
    events.subscribe(repo)  # its changes become Prefect events
    # what the task commits through the run materializes its collection's asset
    repo.on(VERSION_COMMITTED, lambda e: assets.materialized(repo, repo.artifact(e.ref)))
    kwargs = ident.run_kwargs()
    if ident.task_name:
        kwargs["job_type"] = ident.task_name
    try:
        run = repo.run(project=project, config=config, **kwargs)
    except BaseException:
        repo.close()
        raise
    _finish_with_the_run()
    return RUNS.add(run, repo.close)


def _finish_with_the_run() -> None:
    """Hook the running task (else flow) once: its end finishes the cairn run it holds."""
    from prefect.context import FlowRunContext, TaskRunContext

    task_ctx = TaskRunContext.get()
    owner: Any = task_ctx.task if task_ctx else None
    prefix = "prefect-task-"
    if owner is None:
        flow_ctx = FlowRunContext.get()
        owner, prefix = (flow_ctx.flow if flow_ctx else None), "prefect-flow-"
    if owner is None or getattr(owner, _HOOKED, False):
        return

    def hook(state: str) -> Any:
        def finish(_owner: Any, prefect_run: Any, _state: Any) -> None:
            RUNS.finish(prefix + str(prefect_run.id).replace("-", ""), state)

        finish.__name__ = f"cairn_run_{state}"
        return finish

    owner.on_completion_hooks.append(hook("finished"))
    owner.on_failure_hooks.append(hook("failed"))
    if hasattr(owner, "on_crashed_hooks"):  # flows: a crashed flow run
        owner.on_crashed_hooks.append(hook("crashed"))
    setattr(owner, _HOOKED, True)
