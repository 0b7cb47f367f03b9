"""Reading back what flows recorded in Prefect, through its client."""

import json
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import Artifact, TaskRun
from prefect.client.schemas.sorting import ArtifactSort


def summaries(key: str, *flow_run_ids: Any) -> list[Artifact]:
    """Table artifacts published under `key` by these flow runs, newest first, read back
    through the API (the server lives for the session: other tests publish too)."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
        )
    return [a for a in found if a.flow_run_id in flow_run_ids]


def task_runs(flow_run_id: Any) -> list[TaskRun]:
    """Task runs of a flow run, as the Prefect API records them."""
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def table_row(artifact: Artifact) -> dict[str, Any]:
    """The single row of a cairn summary table artifact."""
    assert artifact.type == "table"
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    (row,) = data
    return row
