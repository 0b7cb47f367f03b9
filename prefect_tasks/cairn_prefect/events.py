"""cairn's events as Prefect events, so an automation or a deployment trigger can start a
flow when a version is committed or an alias (say `production`) moves.

Each cairn event (docs/EVENTS.md) becomes a Prefect event of the same name:

    event      cairn.alias.moved (cairn.version.committed, cairn.alias.removed, ...)
    resource   {"prefect.resource.id": "cairn.version.demo/model:v3",
                "prefect.resource.name": "demo/model:v3", "cairn.ref": "demo/model:v3",
                "cairn.project": "demo", "cairn.name": "model", "cairn.version": "v3",
                "cairn.digest": "...", "cairn.alias": "production"}     (alias events)
    related    the collection's asset, {"prefect.resource.id": "cairn://demo/model",
                "prefect.resource.role": "asset"} (and the flow and task run, in one)
    payload    Event.to_dict(): ref, digest, aliases, alias, previous, run, metadata, ...

A trigger on `production` moving:
`DeploymentEventTrigger(expect={"cairn.alias.moved"}, match={"cairn.alias": "production"},
parameters={"ref": "{{ event.payload.ref }}"})`.

The cairn tasks subscribe the repositories they open (`subscribe`); the `prefect` plugin
of the `cairn.events` entry point group subscribes every other repository (the CLI, a
script) of a process that has a Prefect API configured.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.events import emit_event

from cairn import Event, Repository, Subscription

from .assets import asset_key

log = logging.getLogger("cairn_prefect")
_SUBSCRIBED = "_cairn_prefect_events"


def resource(event: Event) -> dict[str, str]:
    """The Prefect resource of the version an event is about, labelled for triggers."""
    labels = {
        "prefect.resource.id": f"cairn.version.{event.ref}",
        "prefect.resource.name": event.ref,
        "cairn.ref": event.ref,
        "cairn.project": event.project,
        "cairn.name": event.name,
        "cairn.type": event.type,
        "cairn.version": event.version,
    }
    if event.digest:
        labels["cairn.digest"] = event.digest
    if event.alias:
        labels["cairn.alias"] = event.alias
    return labels


def related(event: Event) -> list[dict[str, str]]:
    """The collection's asset (`cairn://project/name`) as a related resource."""
    return [
        {
            "prefect.resource.id": asset_key(event.project, event.name),
            "prefect.resource.role": "asset",
            "prefect.resource.name": event.collection,
        }
    ]


def emit(event: Event) -> Any:
    """Send one cairn event to Prefect (returns Prefect's Event, or None when Prefect
    sends no events from this process)."""
    return emit_event(
        event=event.event,
        resource=resource(event),
        related=related(event),
        payload=event.to_dict(),
        occurred=event.occurred_at,
    )


def subscribe(repo: Repository) -> Subscription:
    """Emit every change of `repo` as a Prefect event; once per repository, however
    often it is called (a task and the plugin may both ask)."""
    existing: Subscription | None = getattr(repo, _SUBSCRIBED, None)
    if existing is None:
        existing = repo.on("*", emit)
        setattr(repo, _SUBSCRIBED, existing)
    return existing


def plugin(repo: Repository) -> None:
    """The `cairn.events` entry point: subscribe `repo` where Prefect can receive events
    (an API URL is configured, or this runs inside a flow or task run)."""
    if _prefect_listens():
        subscribe(repo)


def _prefect_listens() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value() or FlowRunContext.get() or TaskRunContext.get())
