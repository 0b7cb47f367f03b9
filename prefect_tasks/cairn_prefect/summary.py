"""The Prefect table artifact each commit publishes: what the version holds and what changed."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from prefect.artifacts import create_table_artifact

from cairn import ArtifactVersion, Repository, format_size

_LISTED = 10  # paths listed per kind in the description; the CLI diff shows them all


@dataclass(frozen=True)
class VersionSummary:
    """One row of the table artifact (column names are the field names)."""

    ref: str
    created: bool  # False: identical content (or a finish already done) returned this version
    files: int
    total_bytes: int
    new_bytes: int | None  # bytes this commit newly stored; None when cairn did not report it
    previous: str | None
    added: int
    removed: int
    modified: int
    digest: str | None


def artifact_key(project: str, name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "cairn-" + re.sub(r"[^a-z0-9]+", "-", f"{project}-{name}".lower()).strip("-")


def summarize(
    repo: Repository, v: ArtifactVersion, *, created: bool, new_bytes: int | None
) -> tuple[VersionSummary, list[str]]:
    """The summary row and a markdown description (diff against the previous version)."""
    previous = _previous(repo, v)
    diff = repo.diff(previous.ref, v.ref) if previous is not None else None
    row = VersionSummary(
        ref=v.ref,
        created=created,
        files=v.file_count,
        total_bytes=v.size,
        new_bytes=new_bytes,
        previous=previous.ref if previous is not None else None,
        added=len(diff.added) if diff is not None else v.file_count,
        removed=len(diff.removed) if diff is not None else 0,
        modified=len(diff.modified) if diff is not None else 0,
        digest=v.digest,
    )
    stored = "not reported" if new_bytes is None else format_size(new_bytes)
    state = "committed" if created else "no new version (identical content, or committed before)"
    lines = [
        f"**{v.ref}** {state}: {v.file_count} files, {format_size(v.size)}, {stored} newly stored.",
    ]
    if previous is None or diff is None:
        lines.append("First version of the collection.")
        return row, lines
    lines.append(
        f"Against {previous.ref}: {row.added} added, {row.removed} removed, "
        f"{row.modified} modified (`cairn diff {previous.ref} {v.ref}`)."
    )
    lines += _listing("added", diff.added)
    lines += _listing("removed", diff.removed)
    lines += _listing("modified", diff.modified)
    return row, lines


def publish(repo: Repository, v: ArtifactVersion, *, created: bool, new_bytes: int | None) -> Any:
    """Create the table artifact (keyed per collection, so the UI keeps its history)."""
    row, lines = summarize(repo, v, created=created, new_bytes=new_bytes)
    return create_table_artifact(
        table=[asdict(row)],
        key=artifact_key(v.project, v.name),
        description="\n\n".join(lines),
    )


def _previous(repo: Repository, v: ArtifactVersion) -> ArtifactVersion | None:
    """The newest committed version older than `v` (deleted versions are skipped)."""
    if v.index is None:
        return None
    for other in repo.versions(f"{v.project}/{v.name}"):
        if other.state == "COMMITTED" and other.index is not None and other.index < v.index:
            return other
    return None


def _listing(kind: str, paths: tuple[str, ...]) -> list[str]:
    if not paths:
        return []
    shown = ", ".join(f"`{p}`" for p in paths[:_LISTED])
    more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
    return [f"{kind.capitalize()}: {shown}{more}."]
