"""Airflow Assets for cairn collections: `cairn://project/name`.

A task that logs or commits a version declares the collection's asset as an outlet; the
event it then emits carries the version and its digest in `extra`, so DAGs scheduled on
the asset know exactly which version to read (`triggering_asset_events`).

A task that only knows at run time which collections it writes declares an alias
(`asset_alias("exports")`) instead: each version it records is attached to the alias as
an event on the version's own asset, and a DAG scheduled on the alias runs after it
(Airflow 3's `AssetAlias` + `outlet_events`). The URI rules live in `uris`.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Asset, AssetAlias

from cairn import ArtifactVersion

from .uris import SCHEME, asset_uri

#: what names of aliases declared with `asset_alias` start with
ALIAS_PREFIX = f"{SCHEME}:"
log = logging.getLogger(__name__)


def asset_for(project: str, name: str) -> Asset:
    """The Asset of collection `project/name`, for `outlets=` and `schedule=`."""
    return Asset(uri=asset_uri(project, name))


def create_asset(*, project: str, name: str, extra: dict[str, Any] | None = None) -> Asset:
    """The `cairn` scheme's asset factory (`get_provider_info()["asset-uris"]`): what
    Airflow's hook-level lineage collector calls with `scheme="cairn"`."""
    return Asset(uri=asset_uri(project, name), extra=extra or {})


def asset_alias(name: str) -> AssetAlias:
    """An alias standing for whatever versions the task records (`record_asset_event`),
    whichever collections they belong to: declare it in `outlets=` of the producer and
    in `schedule=` of the consumers. Its name is `cairn:<name>`."""
    if not name or "{{" in name:
        raise ValueError(f"invalid cairn asset alias {name!r}: give it a fixed, non-empty name")
    return AssetAlias(name=f"{ALIAS_PREFIX}{name}")


def outlet_for(project: str, name: str) -> Asset | AssetAlias:
    """What an operator declares as its outlet. A templated project or name is unknown
    until the task runs, so it gets an alias, and the concrete asset is attached then."""
    written = f"{project}/{name}"
    if "{{" in written or "{%" in written:
        return AssetAlias(name=f"{SCHEME}://{written}")
    return asset_for(project, name)


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
    """Attach `v` to the asset events of the running task: its collection's asset
    outlet, else the first templated operator alias (`cairn://...{{ }}`), and every alias
    declared with `asset_alias`. False if the task has none of them (declare
    `outlets=[asset_for(project, name)]` or `outlets=[asset_alias("...")]`)."""
    if context is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
    uri = asset_uri(v.project, v.name)
    outlets = list(context["task"].outlets or ())
    events = context["outlet_events"]
    extra = event_extra(v)
    found = False
    for outlet in outlets:
        if isinstance(outlet, Asset) and outlet.uri == uri:
            events[outlet].extra.update(extra)
            found = True
            break
    aliases = [o for o in outlets if isinstance(o, AssetAlias)]
    if not found:
        templated = [a for a in aliases if a.name.startswith(f"{SCHEME}://")]
        for outlet in templated[:1]:
            events[outlet].add(Asset(uri=uri), extra=extra)
            found = True
    for outlet in aliases:
        if outlet.name.startswith(ALIAS_PREFIX) and not outlet.name.startswith(f"{SCHEME}://"):
            events[outlet].add(Asset(uri=uri), extra=extra)
            found = True
    if not found:
        log.warning("no outlet %s on this task: no asset event for %s", uri, v.ref)
    return found
