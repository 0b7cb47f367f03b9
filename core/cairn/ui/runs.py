"""Runs: a project's runs as a table (config and summary columns, filtered with the query
language, sorted by any field, by the catalog), and a run's page."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Query

from .. import listing
from ..foundation.errors import InvalidQuery, NotFound
from ..foundation.names import check_name
from ..foundation.query import format_path
from . import links
from .pages import Pages
from .state import UI
from .views import Doc, run_doc, version_doc

pages = Pages()

RUNS_PER_PAGE = 50
#: config keys shown as columns at most (summary keys: listing.MAX_KEY_COLUMNS)
CONFIG_COLUMNS = 4


@pages.page("/projects/{project}/runs", "runs.html")
def runs_page(ui: UI, project: str, q: str = "", sort: str = "", page: int = Query(1, ge=1)) -> Doc:
    repo = ui.repo
    info = repo.project(check_name(project, kind="project"))
    doc: Doc = {
        "project": {
            "name": info.name,
            "url": links.project(project),
            "runs_url": links.runs(project),
        },
        "q": q,
        "sort": sort,
        "page": page,
    }
    try:
        found = repo.search_runs(
            q,
            project=project,
            order_by=sort or None,
            limit=RUNS_PER_PAGE,
            offset=(page - 1) * RUNS_PER_PAGE,
        )
        total = repo.count_runs(q, project=project)
        doc["all"] = repo.count_runs(project=project) if q else total
    except InvalidQuery as exc:
        return {**doc, "status": 400, "error": str(exc), "runs": [], "total": 0, "pages": 1}
    docs = [run_doc(r) for r in found]
    # the summary's metrics first (what a sweep is compared by), then the config's
    summary, hidden = listing.key_columns(
        (d["summary"] for d in docs), listing.named_keys("summary", q, sort or None)
    )
    config, _ = listing.key_columns(
        (d["config"] for d in docs), listing.named_keys("config", q, sort or None)
    )
    config = config[:CONFIG_COLUMNS]
    for d in docs:
        d["config_cells"] = [listing.cell(listing.lookup(d["config"], k)) for k in config]
        d["summary_cells"] = [listing.cell(listing.lookup(d["summary"], k)) for k in summary]
    doc.update(
        runs=docs,
        config_columns=[format_path(k) for k in config],
        summary_columns=[format_path(k) for k in summary],
        hidden_columns=hidden,
        total=total,
        pages=max(1, -(-total // RUNS_PER_PAGE)),
    )
    return doc


@pages.page("/projects/{project}/runs/{run_id}", "run.html")
def run_page(ui: UI, project: str, run_id: str) -> Doc:
    run = ui.repo.get_run(run_id)
    if run.project != check_name(project, kind="project"):
        raise NotFound(f"run {run_id} is not in project {project!r}")
    doc = run_doc(run)
    return {
        "run": doc,
        "external": ui.run_links(doc),
        "project": {"name": run.project, "url": links.project(run.project)},
        "runs_url": links.runs(run.project),
        "group_url": _group_url(run.project, run.group),
        "used": [version_doc(v) for v in run.used_artifacts()],
        "logged": [version_doc(v) for v in run.logged_artifacts()],
        "contributed": [version_doc(v) for v in run.contributed_artifacts()],
    }


def _group_url(project: str, group: str | None) -> str | None:
    """The runs table filtered to one group (a sweep, a DAG run, a flow run)."""
    if not group:
        return None
    quoted = "'" + group.replace("'", "''") + "'"  # a string literal of the query language
    return f"{links.runs(project)}?{urlencode({'q': f'group = {quoted}'})}"
