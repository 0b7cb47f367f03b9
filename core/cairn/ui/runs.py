"""A run's page: what kind of run it was, and the versions it used, logged and contributed to."""

from __future__ import annotations

from ..errors import NotFound
from ..names import check_name
from . import links
from .pages import Pages
from .state import UI
from .views import Doc, run_doc, version_doc

pages = Pages()


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
        "used": [version_doc(v) for v in run.used_artifacts()],
        "logged": [version_doc(v) for v in run.logged_artifacts()],
        "contributed": [version_doc(v) for v in run.contributed_artifacts()],
    }
