"""Lineage: the graph of versions and the runs that logged and used them, and its pictures.

Edges point the way data flows: `run -logged-> version` (or `-contributed->` for a part of
a distributed version) and `version -used-> run`. `build` walks upstream from a version
(who logged it, what that run used, who logged that, ...) and downstream (who used it, what
those runs logged, ...), never sideways, so the graph holds only true ancestors and
descendants. `tree`, `dot` and `mermaid` render it for a terminal, Graphviz and Markdown.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from .run import Run
    from .version import ArtifactVersion

NodeKind = Literal["version", "run"]
EdgeKind = Literal["logged", "contributed", "used"]


@dataclass(frozen=True)
class Node:
    """A version or a run. `key` is unique in the graph: 'version:<id>' or 'run:<id>'."""

    key: str
    kind: NodeKind
    label: str  # 'demo/mnist:v3' or the run's name
    detail: str  # 'dataset · latest' or 'train · airflow · finished'


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind


@dataclass
class LineageGraph:
    """Nodes in discovery order (the root first) and unique edges in discovery order."""

    root: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def parents(self, key: str) -> list[Edge]:
        """Edges into `key`: where its data came from."""
        return [e for e in self.edges if e.target == key]

    def children(self, key: str) -> list[Edge]:
        """Edges out of `key`: where its data went."""
        return [e for e in self.edges if e.source == key]

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "nodes": [vars(n) for n in self.nodes.values()],
            "edges": [vars(e) for e in self.edges],
        }


def build(start: ArtifactVersion | Run, *, depth: int | None = None) -> LineageGraph:
    """The lineage of a version (or a run), up to `depth` edges away in each direction
    (None: all). `build(x, depth=1)` is x with every node it has an edge to."""
    graph = LineageGraph(_key(start))
    _add(graph, start)
    _walk(graph, start, depth, upstream=True)
    _walk(graph, start, depth, upstream=False)
    return graph


def _walk(
    graph: LineageGraph, start: ArtifactVersion | Run, depth: int | None, *, upstream: bool
) -> None:
    seen = {_key(start)}
    known = set(graph.edges)
    queue: deque[tuple[Any, int]] = deque([(start, 0)])
    while queue:
        item, hops = queue.popleft()
        if depth is not None and hops >= depth:
            continue
        for other, kind in _upstream(item) if upstream else _downstream(item):
            _add(graph, other)
            source, target = (other, item) if upstream else (item, other)
            edge = Edge(_key(source), _key(target), kind)
            if edge not in known:
                known.add(edge)
                graph.edges.append(edge)
            if _key(other) not in seen:
                seen.add(_key(other))
                queue.append((other, hops + 1))


def _upstream(item: Any) -> Iterable[tuple[Any, EdgeKind]]:
    from .run import Run

    if isinstance(item, Run):
        return [(v, "used") for v in item.used_artifacts()]
    logger = item.logged_by()
    found: list[tuple[Any, EdgeKind]] = [(logger, "logged")] if logger else []
    found += [(r, "contributed") for r in item.contributors() if r != logger]
    return found


def _downstream(item: Any) -> Iterable[tuple[Any, EdgeKind]]:
    from .run import Run

    if isinstance(item, Run):
        logged = item.logged_artifacts()
        parts = [v for v in item.contributed_artifacts() if v not in logged]
        return [(v, "logged") for v in logged] + [(v, "contributed") for v in parts]
    return [(r, "used") for r in item.used_by()]


def _key(item: ArtifactVersion | Run) -> str:
    from .run import Run

    return f"run:{item.id}" if isinstance(item, Run) else f"version:{item.id}"


def _add(graph: LineageGraph, item: ArtifactVersion | Run) -> None:
    from .run import Run

    key = _key(item)
    if key in graph.nodes:
        return
    if isinstance(item, Run):
        bits = [item.job_type, item.kind, item.state]
        label = item.name or item.id[:12]  # unnamed: a short id
        graph.nodes[key] = Node(key, "run", label, " · ".join(b for b in bits if b))
    else:
        tags = [item.type, *item.aliases]
        if item.state != "COMMITTED":
            tags.append(item.state)
        graph.nodes[key] = Node(key, "version", item.ref, " · ".join(tags))


# -- pictures --------------------------------------------------------------------------

_UP_VERB = {"logged": "logged by", "contributed": "part from", "used": "used"}
_DOWN_VERB = {"logged": "logged", "contributed": "contributed to", "used": "used by"}


def tree(graph: LineageGraph) -> Tree:
    """A rich Tree: the version, then 'upstream' and 'downstream' branches.

    A node reached a second time is shown once more, marked '(see above)', and not
    expanded again, so diamonds and cycles stay finite.
    """
    root = graph.nodes[graph.root]
    top = Tree(_styled(root, bold=True))
    up = top.add(Text("upstream", style="dim"))
    if not _grow(graph, up, graph.root, upstream=True, expanded={graph.root}):
        up.add(Text("nothing: logged outside any run", style="dim"))
    down = top.add(Text("downstream", style="dim"))
    if not _grow(graph, down, graph.root, upstream=False, expanded={graph.root}):
        down.add(Text("nothing: no run used it", style="dim"))
    return top


def _grow(
    graph: LineageGraph, branch: Tree, key: str, *, upstream: bool, expanded: set[str]
) -> bool:
    edges = graph.parents(key) if upstream else graph.children(key)
    for edge in edges:
        other = edge.source if upstream else edge.target
        verb = (_UP_VERB if upstream else _DOWN_VERB)[edge.kind]
        label = Text(f"{verb} ", style="dim") + _styled(graph.nodes[other])
        if other in expanded:
            branch.add(label + Text(" (see above)", style="dim"))
            continue
        expanded.add(other)
        _grow(graph, branch.add(label), other, upstream=upstream, expanded=expanded)
    return bool(edges)


def _styled(node: Node, *, bold: bool = False) -> Text:
    style = "cyan" if node.kind == "version" else "magenta"
    head = "" if node.kind == "version" else "run "
    text = Text(f"{head}{node.label}", style=f"bold {style}" if bold else style)
    if node.detail:
        text += Text(f" ({node.detail})", style="dim")
    return text


def dot(graph: LineageGraph) -> str:
    """Graphviz source: `cairn lineage REF --format dot | dot -Tsvg > lineage.svg`."""
    ids = {key: f"n{i}" for i, key in enumerate(graph.nodes)}
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9, color="#666666"];',
    ]
    for key, node in graph.nodes.items():
        label = _dot_escape(node.label) + (r"\n" + _dot_escape(node.detail) if node.detail else "")
        if node.kind == "version":
            shape = 'shape=box, style="rounded,filled", fillcolor="#e0f2ff"'
        else:
            shape = 'shape=ellipse, style=filled, fillcolor="#f6e6ff"'
        if key == graph.root:
            shape += ", penwidth=2.5"
        lines.append(f'  {ids[key]} [label="{label}", {shape}];')
    for e in graph.edges:
        lines.append(f'  {ids[e.source]} -> {ids[e.target]} [label="{e.kind}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", r"\n")


def mermaid(graph: LineageGraph) -> str:
    """Mermaid flowchart source, for Markdown that renders ```mermaid blocks."""
    ids = {key: f"n{i}" for i, key in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for key, node in graph.nodes.items():
        label = _mermaid_escape(node.label)
        if node.detail:
            label += "<br/>" + _mermaid_escape(node.detail)
        # versions are boxes, runs are stadiums
        shape = f'["{label}"]' if node.kind == "version" else f'(["{label}"])'
        lines.append(f"  {ids[key]}{shape}")
    for e in graph.edges:
        lines.append(f"  {ids[e.source]} -->|{e.kind}| {ids[e.target]}")
    lines.append("  classDef version fill:#e0f2ff,stroke:#3b82f6")
    lines.append("  classDef run fill:#f6e6ff,stroke:#a855f7")
    for kind in ("version", "run"):
        members = [ids[k] for k, n in graph.nodes.items() if n.kind == kind]
        if members:
            lines.append(f"  class {','.join(members)} {kind}")
    lines.append(f"  style {ids[graph.root]} stroke-width:3px")
    return "\n".join(lines) + "\n"


def _mermaid_escape(text: str) -> str:
    for raw, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return text.replace("\n", " ")
