"""Link artifacts: from a task run to the page of the version it logged or used."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_link_artifact

from cairn import ArtifactVersion
from cairn.ui import links

from .summary import artifact_key


def page_url(ui_url: str, v: ArtifactVersion) -> str:
    """The version's page in the cairn UI served at `ui_url`."""
    return links.version_url(ui_url, v.project, v.name, links.selector(v))


def link_key(project: str, name: str) -> str:
    """One key per collection (Prefect keeps the history under it), beside the summary's."""
    return artifact_key(project, name) + "-page"


def publish(ui_url: str | None, v: ArtifactVersion, *, verb: str) -> Any:
    """A link artifact to `v`'s page, if the block names a UI (else nothing)."""
    if not ui_url:
        return None
    return create_link_artifact(
        link=page_url(ui_url, v),
        link_text=v.ref,
        key=link_key(v.project, v.name),
        description=f"{verb} [{v.ref}]({page_url(ui_url, v)}): its page in the cairn UI",
    )
