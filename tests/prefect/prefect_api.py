"""Reading back what flows recorded in Prefect, through its client."""

import json
import time
from datetime import timedelta
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
from prefect.events import Event
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventOrder,
    EventRelatedFilter,
    EventResourceFilter,
)
from prefect.types._datetime import now


def summaries(key: str, *flow_run_ids: Any) -> list[Artifact]:
    """Table artifacts published under `key` by these flow runs, newest first, read back
    through the API (the server lives for the session: other tests publish too)."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
        )
    return [a for a in found if a.flow_run_id in flow_run_ids]


def task_runs(flow_run_id: Any, *, timeout: float = 30) -> list[TaskRun]:
    """Task runs of a flow run, as the Prefect API records them.

    The server records task runs from the events the flow run sends, in batches and in the
    background: wait until every recorded one has ended and two reads a second apart agree.
    """
    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    deadline = time.monotonic() + timeout
    seen: list[tuple[str, Any]] | None = None
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_task_runs(flow_run_filter=flow_runs)
            now_seen = sorted((str(t.id), t.state_type) for t in found)
            ended = all(t.state is not None and t.state.is_final() for t in found)
            if (ended and now_seen == seen) or time.monotonic() > deadline:
                return found
            seen = now_seen
            time.sleep(1.0)


def table_row(artifact: Artifact) -> dict[str, Any]:
    """The single row of a cairn summary table artifact."""
    assert artifact.type == "table"
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    (row,) = data
    return row


def events_named(name: str, resource_id: str, flow_run_id: Any = None) -> list[Event]:
    """Events of this name about this resource, oldest first, read back through the
    client's events API; with `flow_run_id`, only those related to that flow run."""
    related = EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]) if flow_run_id else None
    event_filter = EventFilter(
        occurred=EventOccurredFilter(since=now("UTC") - timedelta(hours=1)),
        event=EventNameFilter(name=[name]),
        resource=EventResourceFilter(id=[resource_id]),
        related=related,
        order=EventOrder.ASC,
    )
    with get_client(sync_client=True) as client:
        return list(client.read_events(filter=event_filter, limit=50).events)


def wait_for_events(
    name: str, *, resource_id: str, flow_run_id: Any = None, count: int = 1, timeout: float = 60
) -> list[Event]:
    """Wait until the server has stored `count` such events (the client sends them in the
    background, the server persists them in batches); fail if more arrive."""
    deadline = time.monotonic() + timeout
    while True:
        found = events_named(name, resource_id, flow_run_id)
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(found) == count, (name, resource_id, [e.model_dump(mode="json") for e in found])
    return found
