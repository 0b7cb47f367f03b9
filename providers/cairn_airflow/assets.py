"""Airflow Assets for cairn collections: `cairn://project/name`.

A task that logs or commits a version declares the collection's asset as an outlet; the
event it then emits carries the version and its digest in `extra`, so DAGs scheduled on
the asset know exactly which version to read (`triggering_asset_events`).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, AssetAlias

from cairn import ArtifactVersion

SCHEME = "cairn"
log = logging.getLogger(__name__)


def asset_uri(project: str, name: str) -> str:
    return f"{SCHEME}://{project}/{name}"


def asset_for(project: str, name: str) -> Asset:
    """The Asset of collection `project/name`, for `outlets=` and `schedule=`."""
    return Asset(uri=asset_uri(project, name))


def outlet_for(project: str, name: str) -> Asset | AssetAlias:
    """What an operator declares as its outlet. A templated project or name is unknown
    until the task runs, so it gets an alias, and the concrete asset is attached then."""
    uri = asset_uri(project, name)
    return AssetAlias(name=uri) if "{{" in uri or "{%" in uri else Asset(uri=uri)


def event_extra(v: ArtifactVersion) -> dict[str, Any]:
    """What a consumer needs to pin the version: `extra["ref"]` is `project/name:vN`."""
    return {
        "ref": v.ref,
        "project": v.project,
        "name": v.name,
        "version": v.version,
        "digest": v.digest,
        "size": v.size,
        "files": v.file_count,
    }


def record_asset_event(v: ArtifactVersion, context: Any = None) -> bool:
    """Attach `v` to the asset event of the running task; False if the task has no
    matching outlet (declare `outlets=[asset_for(project, name)]`)."""
    if context is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
    uri = asset_uri(v.project, v.name)
    outlets = list(context["task"].outlets or ())
    events = context["outlet_events"]
    extra = event_extra(v)
    for outlet in outlets:
        if isinstance(outlet, Asset) and outlet.uri == uri:
            events[outlet].extra.update(extra)
            return True
    for outlet in outlets:
        if isinstance(outlet, AssetAlias) and outlet.name.startswith(f"{SCHEME}://"):
            events[outlet].add(Asset(uri=uri), extra=extra)
            return True
    log.warning("no outlet %s on this task: no asset event for %s", uri, v.ref)
    return False
