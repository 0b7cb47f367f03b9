"""The lineage tab: versions and runs as a graph the browser lays out (cytoscape + dagre),
with a depth control, and neighbours fetched when a collapsed node is expanded.

Each node carries its `degree` (how many distinct nodes it has an edge to); the page
marks a node collapsed while fewer of them are shown, and expanding it asks
/api/lineage/neighbours for the rest.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.exceptions import HTTPException

from .. import lineage
from ..foundation.errors import NotFound
from ..repository import Repository
from ..run import Run
from ..version import ArtifactVersion
from . import links
from .pages import Pages
from .state import UI
from .versions import header, resolve
from .views import Doc

pages = Pages()
router = APIRouter()

DEPTHS = ("1", "2", "3", "5", "all")
DEFAULT_DEPTH = "2"
#: a graph larger than this is drawn without degrees (every node then looks expanded)
DEGREES_UP_TO = 150


@pages.page("/projects/{project}/artifacts/{name}/{version}/lineage", "lineage.html")
def lineage_page(ui: UI, project: str, name: str, version: str, depth: str = DEFAULT_DEPTH) -> Doc:
    if depth not in DEPTHS:
        raise HTTPException(400, f"depth must be one of {', '.join(DEPTHS)}")
    v = resolve(ui.repo, project, name, version)
    graph = lineage.build(v, depth=None if depth == "all" else int(depth))
    doc = header(ui, v)
    doc.update(graph=graph_doc(ui.repo, graph, home=v.project), depth=depth, depths=list(DEPTHS))
    return doc


@router.get("/api/lineage/neighbours")
def neighbours(
    ui: UI,
    version: str | None = Query(None, description="a version's ref: project/name:vN"),
    run: str | None = Query(None, description="a run's id"),
) -> Doc:
    """A version or a run with every node it has an edge to (for expanding a node)."""
    if (version is None) == (run is None):
        raise HTTPException(400, "give one of version=REF or run=ID")
    item: ArtifactVersion | Run
    item = ui.repo.artifact(version) if version else ui.repo.get_run(run or "")
    return graph_doc(ui.repo, lineage.build(item, depth=1), home=item.project)


def graph_doc(repo: Repository, graph: lineage.LineageGraph, *, home: str) -> Doc:
    """Nodes and edges as the page draws them, each node with its page's URL; versions
    of project `home` are named without it."""
    degrees = len(graph.nodes) <= DEGREES_UP_TO
    nodes = []
    for key, node in graph.nodes.items():
        doc: Doc = {
            "id": key,
            "kind": node.kind,
            "label": node.label,
            "detail": node.detail,
            "root": key == graph.root,
        }
        item = _item(repo, key, node)
        if isinstance(item, ArtifactVersion):
            doc.update(
                ref=item.ref,
                name=_short(item, home),
                subtitle=" · ".join([item.type, *item.aliases, *_unusual(item.state)]),
                family=f"{item.project}/{item.name}",
                url=links.of_version(item),
            )
        elif isinstance(item, Run):
            doc.update(
                run_id=item.id,
                name=node.label,
                subtitle=" · ".join(
                    [b for b in (item.job_type or item.kind,) if b != node.label]
                    + _unusual(item.state)
                ),
                family=item.job_type or item.kind,
                url=links.run(item.project, item.id),
            )
        else:  # a deleted version: drawn, but it has no page any more
            doc.update(name=node.label, subtitle="deleted", family=node.label, url=None)
        if degrees:
            doc["degree"] = len(lineage.build(item, depth=1).nodes) - 1 if item else 0
        nodes.append(doc)
    edges = [
        {
            "id": f"{e.source}>{e.target}:{e.kind}",
            "source": e.source,
            "target": e.target,
            "kind": e.kind,
        }
        for e in graph.edges
    ]
    return {"root": graph.root, "nodes": nodes, "edges": edges}


def _short(v: ArtifactVersion, home: str) -> str:
    name = v.name if v.project == home else f"{v.project}/{v.name}"
    return f"{name}:{v.version}" if v.index is not None else f"{name} (pending)"


def _unusual(state: str) -> list[str]:
    """A state worth a word on a node: not the usual committed or finished."""
    return [] if state in ("COMMITTED", "finished") else [state.lower()]


def _item(repo: Repository, key: str, node: lineage.Node) -> ArtifactVersion | Run | None:
    """The version or run a node stands for (None: a version deleted since)."""
    try:
        if node.kind == "version":
            return repo.artifact(node.label)
        return repo.get_run(key.split(":", 1)[1])
    except NotFound:
        return None
