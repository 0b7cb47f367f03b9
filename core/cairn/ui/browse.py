"""Pages that browse the catalog: projects, a project's collections, a collection's versions,
and the diff of two versions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.exceptions import HTTPException

from ..errors import NotFound, PermissionDenied
from ..names import check_name
from ..version import ArtifactVersion
from . import links
from .pages import Pages
from .state import UI
from .views import Doc, cell, flatten, iso, metadata_columns, version_doc

pages = Pages()

VERSIONS_PER_PAGE = 50
#: paths listed per kind on a diff page; the JSON twin and `cairn diff` list them all
DIFF_LISTED = 1000
#: what a collection's versions can be sorted by, besides metadata.<key>
VERSION_SORTS = {
    "version": lambda d: d["index"] if d["index"] is not None else float("inf"),
    "created": lambda d: d["created_at"] or "",
    "size": lambda d: d["size"],
    "files": lambda d: d["file_count"],
}


@pages.page("/projects", "projects.html")
def projects_page(ui: UI) -> Doc:
    repo = ui.repo
    collections: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    for c in repo.collections():
        collections[c["project"]] += 1
        versions[c["project"]] += c["versions"]
    out = []
    for name in repo.projects():
        try:
            info = repo.project(name)
        except PermissionDenied:
            continue  # listed, but not the caller's to read
        out.append(
            {
                "name": name,
                "visibility": info.visibility,
                "access": info.access,
                "created_at": iso(info.created_at),
                "collections": collections[name],
                "versions": versions[name],
                "url": links.project(name),
            }
        )
    return {"projects": out}


@pages.page("/projects/{project}", "project.html")
def project_page(ui: UI, project: str) -> Doc:
    repo = ui.repo
    info = repo.project(check_name(project, kind="project"))
    rows = []
    for c in repo.collections(project):
        try:
            latest: Doc | None = version_doc(repo.artifact(f"{project}/{c['name']}:latest"))
        except NotFound:
            latest = None  # every version deleted, or only pending ones
        rows.append(
            {
                "name": c["name"],
                "type": c["type"],
                "versions": c["versions"],
                "latest": latest,
                "url": links.collection(project, c["name"]),
            }
        )
    return {
        "project": {
            "name": info.name,
            "visibility": info.visibility,
            "access": info.access,
            "created_at": iso(info.created_at),
            "url": links.project(project),
        },
        "types": dict(sorted(Counter(r["type"] for r in rows).items())),
        "collections": rows,
    }


@pages.page("/projects/{project}/artifacts/{name}", "collection.html")
def collection_page(ui: UI, project: str, name: str, sort: str = "-version", page: int = 1) -> Doc:
    repo = ui.repo
    found = repo.versions(f"{check_name(project, kind='project')}/{check_name(name)}")
    docs = [version_doc(v) for v in found]
    key, descending = _sort_key(sort)
    docs.sort(key=key, reverse=descending)
    start = (max(page, 1) - 1) * VERSIONS_PER_PAGE
    shown = docs[start : start + VERSIONS_PER_PAGE]
    columns = metadata_columns(shown)
    by_id = {v.ref: v for v in found}
    for doc in shown:
        flat = flatten(doc["metadata"])
        doc["columns"] = [cell(flat.get(c)) for c in columns]
        doc["logged_by"] = _logger(by_id[doc["ref"]])
    committed = [d for d in docs if d["state"] == "COMMITTED"]
    return {
        "collection": _collection_doc(project, name, found),
        "versions": shown,
        "metadata_columns": columns,
        "sort": sort,
        "page": max(page, 1),
        "pages": max(1, -(-len(docs) // VERSIONS_PER_PAGE)),
        "total": len(docs),
        "selectors": [d["selector"] for d in committed],
    }


@pages.page("/projects/{project}/artifacts/{name}/diff", "diff.html")
def diff_page(ui: UI, project: str, name: str, a: str | None = None, b: str | None = None) -> Doc:
    repo = ui.repo
    base = f"{check_name(project, kind='project')}/{check_name(name)}"
    committed = [v for v in repo.versions(base) if v.state == "COMMITTED"]
    if not committed:
        raise NotFound(f"{base} has no committed version to compare")
    new = repo.artifact(f"{base}:{b}") if b else committed[0]
    old = repo.artifact(f"{base}:{a}") if a else (committed[1] if len(committed) > 1 else new)
    d = repo.diff(old.ref, new.ref)
    old_tree, new_tree = ui.tree(old), ui.tree(new)

    def listed(paths: tuple[str, ...], *, before: bool, after: bool) -> list[Doc]:
        out = []
        for p in paths[:DIFF_LISTED]:
            row: Doc = {"path": p}
            if before:
                row["old_size"] = old_tree.entry(p).size
            if after:
                row["new_size"] = new_tree.entry(p).size
                row["url"] = links.files(links.of_version(new), p)
            out.append(row)
        return out

    return {
        "collection": _collection_doc(project, name, committed),
        "old": version_doc(old),
        "new": version_doc(new),
        "counts": {"added": len(d.added), "removed": len(d.removed), "modified": len(d.modified)},
        "added": listed(d.added, before=False, after=True),
        "removed": listed(d.removed, before=True, after=False),
        "modified": listed(d.modified, before=True, after=True),
        "listed": DIFF_LISTED,
        "selectors": [links.selector(v) for v in committed],
    }


def _collection_doc(project: str, name: str, found: list[ArtifactVersion]) -> Doc:
    aliases = {a: links.selector(v) for v in found for a in v.aliases}
    return {
        "project": project,
        "name": name,
        "type": found[0].type if found else None,
        "versions": len(found),
        "aliases": dict(sorted(aliases.items())),
        "url": links.collection(project, name),
        "project_url": links.project(project),
    }


def _sort_key(sort: str) -> tuple[Any, bool]:
    """`version`, `created`, `size`, `files` or `metadata.<key>`; a leading '-' for
    descending. Versions without the metadata key go last either way."""
    descending = sort.startswith("-")
    field = sort.lstrip("-")
    if field in VERSION_SORTS:
        return VERSION_SORTS[field], descending
    if field.startswith("metadata.") and len(field) > len("metadata."):
        path = field[len("metadata.") :]

        def by_metadata(doc: Doc) -> tuple[int, int, Any]:
            value = flatten(doc["metadata"]).get(path)
            missing = value is None or isinstance(value, dict | list)
            if missing:
                return (0 if descending else 1, 0, 0)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            rank = 1 if descending else 0
            return (rank, 0, value) if numeric else (rank, 1, str(value))

        return by_metadata, descending
    raise HTTPException(
        400, f"cannot sort by {sort!r}: use version, created, size, files or metadata.<key>"
    )


def _logger(v: ArtifactVersion) -> Doc | None:
    run = v.logged_by()
    if run is None:
        return None
    return {"id": run.id, "name": run.name or run.id[:12], "url": links.run(run.project, run.id)}
