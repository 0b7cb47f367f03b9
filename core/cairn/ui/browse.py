"""Pages that browse the catalog: projects, a project's collections, a collection's versions,
and the diff of two versions."""

from __future__ import annotations

from collections import Counter

from fastapi import Query

from .. import listing
from ..foundation.errors import InvalidQuery, NotFound, PermissionDenied
from ..foundation.names import check_name
from ..foundation.query import format_path
from ..version import ArtifactVersion
from . import links
from .pages import Pages
from .state import UI
from .views import Doc, iso, version_doc

pages = Pages()

VERSIONS_PER_PAGE = 50
#: paths listed per kind on a diff page; the JSON twin and `cairn diff` list them all
DIFF_LISTED = 1000


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
        "runs": repo.count_runs(project=project),
        "runs_url": links.runs(project),
    }


@pages.page("/projects/{project}/artifacts/{name}", "collection.html")
def collection_page(
    ui: UI,
    project: str,
    name: str,
    q: str = "",
    sort: str = "",
    page: int = Query(1, ge=1),
) -> Doc:
    """The collection's versions, filtered by a query and sorted by any field, a page at
    a time: the catalog does both (`repo.search_versions`)."""
    repo = ui.repo
    check_name(project, kind="project")
    every = repo.versions(f"{project}/{check_name(name)}")  # NotFound for a missing one
    doc: Doc = {
        "collection": _collection_doc(project, name, every),
        "q": q,
        "sort": sort,
        "page": page,
        "selectors": [links.selector(v) for v in every if v.state == "COMMITTED"],
    }
    try:
        found = repo.search_versions(
            q,
            project=project,
            name=name,
            order_by=sort or None,
            limit=VERSIONS_PER_PAGE,
            offset=(page - 1) * VERSIONS_PER_PAGE,
        )
        total = repo.count_versions(q, project=project, name=name) if q else len(every)
    except InvalidQuery as exc:
        return {**doc, "status": 400, "error": str(exc), "versions": [], "total": 0, "pages": 1}
    doc.update(table(found, q, sort), total=total, pages=max(1, -(-total // VERSIONS_PER_PAGE)))
    return doc


@pages.page("/search", "search.html")
def search_page(ui: UI, q: str = "", sort: str = "", page: int = Query(1, ge=1)) -> Doc:
    """Versions of every project the caller may read that match a query."""
    doc: Doc = {"q": q, "sort": sort, "page": page}
    try:
        found = ui.repo.search_versions(
            q, order_by=sort or None, limit=VERSIONS_PER_PAGE, offset=(page - 1) * VERSIONS_PER_PAGE
        )
        total = ui.repo.count_versions(q)
    except InvalidQuery as exc:
        return {**doc, "status": 400, "error": str(exc), "versions": [], "total": 0, "pages": 1}
    doc.update(table(found, q, sort), total=total, pages=max(1, -(-total // VERSIONS_PER_PAGE)))
    return doc


def table(found: list[ArtifactVersion], q: str, sort: str) -> Doc:
    """Versions as table rows, with a column per metadata key (those the query and the
    sort name first, as `cairn ls --where` shows them)."""
    first = listing.named_keys("metadata", q, sort or None)
    keys, hidden = listing.key_columns((v.metadata for v in found), first)
    rows = []
    for v in found:
        doc = version_doc(v)
        doc["columns"] = [listing.cell(listing.lookup(v.metadata, k)) for k in keys]
        doc["logged_by"] = _logger(v)
        rows.append(doc)
    return {
        "versions": rows,
        "metadata_columns": [format_path(k) for k in keys],
        "hidden_columns": hidden,
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


def _logger(v: ArtifactVersion) -> Doc | None:
    run = v.logged_by()
    if run is None:
        return None
    return {"id": run.id, "name": run.name or run.id[:12], "url": links.run(run.project, run.id)}
