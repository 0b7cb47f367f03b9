"""Versions, runs and file listings as plain JSON documents: what a page renders and what
its /api twin returns, so the two never disagree."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .. import listing
from ..engine.tree import FolderPage, TreeItem
from ..run import Run
from ..version import ArtifactVersion
from . import links

Doc = dict[str, Any]


def iso(moment: datetime | None) -> str | None:
    """A catalog timestamp (UTC; SQLite hands it back naive) as ISO 8601."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def version_doc(v: ArtifactVersion) -> Doc:
    """As `cairn ls --json` prints it, with what the pages link and name it by."""
    return {
        **listing.version_doc(v),
        "selector": links.selector(v),
        "distributed_id": v.distributed_id,
        "url": links.of_version(v),
    }


def run_doc(r: Run) -> Doc:
    """As `cairn runs --json` prints it, with its page's URL."""
    return {**listing.run_doc(r), "url": links.run(r.project, r.id)}


def item_doc(item: TreeItem, version_path: str) -> Doc:
    doc: Doc = {
        "path": item.path,
        "name": item.name,
        "kind": "folder" if item.is_folder else "file",
        "size": item.size,
        "files": item.files,
        "url": links.files(version_path, item.path),
    }
    if not item.is_folder:
        doc["download"] = links.raw(version_path, item.path)
    if item.kind == "link":
        doc["link"] = True
    return doc


def page_doc(page: FolderPage, version_path: str) -> Doc:
    return {
        "folder": page.folder,
        "items": [item_doc(i, version_path) for i in page.items],
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
        "size": page.size,  # None: folders' sizes left out (ask again with sizes=true)
        "files": page.files,
        "has_more": page.has_more,
    }
