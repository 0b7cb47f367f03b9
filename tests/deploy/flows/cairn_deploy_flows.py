"""The flow the Prefect deployment test runs (tests/deploy/test_prefect_deployment.py).

A flow run assembles one version of `deploy/parts` from the part folders in `folder`: one
mapped `upsert_artifact` task run per folder, each in a process of its own (a process
pool), sends it as its part (under `part-NN/`); `finish_artifact` commits the version and
`use_artifact` downloads it. Every task reads the repository from the `CairnRepository`
block named `repository`, as the workers of a real deployment would.

The flow retries once: a task run's process that dies (SIGKILL) takes the process pool
with it, and Prefect cannot retry a task whose process is gone, so the flow run's retry
writes the parts again, under the same flow run (the default distributed id).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, unmapped
from prefect.task_runners import ProcessPoolTaskRunner

from cairn_prefect import finish_artifact, upsert_artifact, use_artifact


@flow(retries=1, retry_delay_seconds=0, task_runner=ProcessPoolTaskRunner(max_workers=2))
def cairn_deploy_parts(folder: str, repository: str = "deploy") -> str:
    paths = sorted(str(p) for p in Path(folder).iterdir() if p.is_dir())
    parts = upsert_artifact.map(
        paths,
        name="parts",
        project="deploy",
        prefix=[Path(p).name for p in paths],
        repository=unmapped(repository),
    )
    ref = finish_artifact(
        name="parts", project="deploy", parts=parts.result(), repository=repository
    )
    return use_artifact(ref, root=str(Path(folder).with_name("checkout")), repository=repository)
