"""Lineage graphs: walks both ways from a version, and the tree, dot and mermaid pictures."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from cairn import Artifact, lineage


def _art(name: str, type: str = "dataset", content: str | None = None) -> Artifact:
    art = Artifact(name, type=type)
    with art.new_file(f"{name}.txt") as f:
        f.write(content if content is not None else name)
    return art


@pytest.fixture
def pipeline(repo):
    """ingest -> raw -> prep -> mnist (+ stats) -> train -> model; eval uses mnist and model.

    Returns the versions by collection name.
    """
    with repo.run(project="demo", name="ingest", job_type="etl") as run:
        raw = run.log_artifact(_art("raw"))
    with repo.run(project="demo", name="prep", job_type="prep") as run:
        run.use_artifact("raw")
        mnist = run.log_artifact(_art("mnist"), aliases=["prod"])
        stats = run.log_artifact(_art("stats", "report"))
    with repo.run(project="demo", name="train", job_type="train") as run:
        run.use_artifact("mnist:prod")
        model = run.log_artifact(_art("model", "model"))
    with repo.run(project="demo", name="eval", job_type="eval") as run:
        run.use_artifact("mnist:prod")
        run.use_artifact("model")
        preds = run.log_artifact(_art("preds", "predictions"))
    return {"raw": raw, "mnist": mnist, "stats": stats, "model": model, "preds": preds}


def _edges(graph: lineage.LineageGraph) -> set[tuple[str, str, str]]:
    label = {k: n.label for k, n in graph.nodes.items()}
    return {(label[e.source], label[e.target], e.kind) for e in graph.edges}


def test_build_walks_upstream_and_downstream(pipeline):
    graph = lineage.build(pipeline["mnist"])
    assert graph.root == f"version:{pipeline['mnist'].id}"
    assert graph.nodes[graph.root].label == "demo/mnist:v0"
    assert _edges(graph) == {
        # upstream: who logged mnist, what that run used, who logged that
        ("prep", "demo/mnist:v0", "logged"),
        ("demo/raw:v0", "prep", "used"),
        ("ingest", "demo/raw:v0", "logged"),
        # downstream: who used mnist, what they logged, who used that, ...
        ("demo/mnist:v0", "train", "used"),
        ("demo/mnist:v0", "eval", "used"),
        ("train", "demo/model:v0", "logged"),
        ("demo/model:v0", "eval", "used"),
        ("eval", "demo/preds:v0", "logged"),
    }
    kinds = {n.label: n.kind for n in graph.nodes.values()}
    assert kinds["prep"] == "run" and kinds["demo/raw:v0"] == "version"


def test_build_never_walks_sideways(pipeline):
    """prep also logged stats, a sibling of mnist: neither an ancestor nor a descendant."""
    labels = {n.label for n in lineage.build(pipeline["mnist"]).nodes.values()}
    assert "demo/stats:v0" not in labels
    # from raw, stats is a descendant
    labels = {n.label for n in lineage.build(pipeline["raw"]).nodes.values()}
    assert "demo/stats:v0" in labels


def test_build_from_the_end_reaches_every_ancestor(pipeline):
    graph = lineage.build(pipeline["preds"])
    labels = {n.label for n in graph.nodes.values()}
    assert labels == {
        "demo/preds:v0",
        "eval",
        "demo/mnist:v0",
        "demo/model:v0",
        "train",
        "prep",
        "demo/raw:v0",
        "ingest",
    }
    assert not graph.children(graph.root)


def test_depth_limits_edges_followed_each_way(pipeline):
    one = lineage.build(pipeline["mnist"], depth=1)
    assert {n.label for n in one.nodes.values()} == {"demo/mnist:v0", "prep", "train", "eval"}
    two = lineage.build(pipeline["mnist"], depth=2)
    assert {n.label for n in two.nodes.values()} == {
        "demo/mnist:v0",
        "prep",
        "demo/raw:v0",
        "train",
        "eval",
        "demo/model:v0",
        "demo/preds:v0",
    }
    zero = lineage.build(pipeline["mnist"], depth=0)
    assert list(zero.nodes) == [zero.root] and not zero.edges


def test_node_details_name_type_aliases_and_run_state(pipeline):
    graph = lineage.build(pipeline["mnist"])
    root = graph.nodes[graph.root]
    assert root.detail == "dataset · latest · prod"
    prep = next(n for n in graph.nodes.values() if n.label == "prep")
    assert prep.detail == "prep · manual · finished"


def test_unnamed_runs_are_labelled_by_a_short_id(repo):
    with repo.run(project="demo") as run:
        v = run.log_artifact(_art("data"))
    graph = lineage.build(v)
    node = graph.nodes[f"run:{run.id}"]
    assert node.label == run.id[:12] and node.detail == "manual · finished"
    assert f"logged by run {run.id[:12]} (manual · finished)" in _render(lineage.tree(graph))


def test_version_outside_any_run_has_an_empty_graph(repo):
    v = repo.log_artifact(_art("lonely"), project="demo")
    graph = lineage.build(v)
    assert list(graph.nodes) == [graph.root] and graph.edges == []
    text = _render(lineage.tree(graph))
    assert "logged outside any run" in text
    assert "no run used it" in text


def test_distributed_parts_are_contributed_edges(repo):
    for w in range(2):
        with repo.run(project="demo", name=f"writer-{w}", group="g1") as run:
            part = Artifact("preds", type="dataset")
            with part.new_file(f"part-{w}.txt") as f:
                f.write(f"part {w}")
            run.upsert_artifact(part)
    with repo.run(project="demo", name="finisher", group="g1") as run:
        v = run.finish_artifact(Artifact("preds", type="dataset"))
    assert _edges(lineage.build(v)) == {
        ("finisher", "demo/preds:v0", "logged"),
        ("writer-0", "demo/preds:v0", "contributed"),
        ("writer-1", "demo/preds:v0", "contributed"),
    }


def test_build_from_a_run_follows_its_parts_downstream(repo):
    with repo.run(project="demo", name="prep") as run:
        run.log_artifact(_art("raw"))
    with repo.run(project="demo", name="writer", group="g2") as writer:
        writer.use_artifact("raw")
        part = Artifact("shards", type="dataset")
        with part.new_file("part-0.txt") as f:
            f.write("part 0")
        writer.upsert_artifact(part)
    assert _edges(lineage.build(writer, depth=1)) == {
        ("demo/raw:v0", "writer", "used"),
        ("writer", "demo/shards@g2", "contributed"),
    }
    with repo.run(project="demo", name="finisher", group="g2") as run:
        v = run.finish_artifact(Artifact("shards", type="dataset"))
    assert [x.ref for x in repo.get_run(writer.id).contributed_artifacts()] == [v.ref]
    # downstream of raw: the writer, and through its part the committed version
    assert ("writer", "demo/shards:v0", "contributed") in _edges(
        lineage.build(repo.artifact("demo/raw:v0"))
    )


def _render(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_tree_shows_both_directions_and_marks_repeats(pipeline):
    text = _render(lineage.tree(lineage.build(pipeline["mnist"])))
    lines = text.splitlines()
    assert lines[0] == "demo/mnist:v0 (dataset · latest · prod)"
    up = text.index("upstream")
    down = text.index("downstream")
    assert up < text.index("logged by run prep") < text.index("used demo/raw:v0") < down
    assert text.index("logged by run ingest") < down
    assert down < text.index("used by run train") < text.index("logged demo/model:v0")
    # eval is reached through mnist and through model: expanded once, then referred to
    assert text.count("logged demo/preds:v0") == 1
    assert "used by run eval (eval · manual · finished) (see above)" in text


def test_dot_has_every_node_and_edge(pipeline):
    graph = lineage.build(pipeline["mnist"])
    src = lineage.dot(graph)
    assert src.startswith("digraph lineage {") and src.rstrip().endswith("}")
    ids = {n.label: f"n{i}" for i, n in enumerate(graph.nodes.values())}
    assert (
        f'{ids["demo/mnist:v0"]} [label="demo/mnist:v0\\ndataset · latest · prod", shape=box' in src
    )
    assert f'{ids["prep"]} [label="prep\\nprep · manual · finished", shape=ellipse' in src
    assert f'{ids["prep"]} -> {ids["demo/mnist:v0"]} [label="logged"];' in src
    assert f'{ids["demo/mnist:v0"]} -> {ids["train"]} [label="used"];' in src
    assert src.count(" -> ") == len(graph.edges)
    assert "penwidth=2.5" in src.splitlines()[4]  # the root stands out


def test_mermaid_has_every_node_and_edge(pipeline):
    graph = lineage.build(pipeline["mnist"])
    src = lineage.mermaid(graph)
    assert src.splitlines()[0] == "flowchart LR"
    ids = {n.label: f"n{i}" for i, n in enumerate(graph.nodes.values())}
    assert f'  {ids["demo/mnist:v0"]}["demo/mnist:v0<br/>dataset · latest · prod"]' in src
    assert f'  {ids["train"]}(["train<br/>train · manual · finished"])' in src
    assert f"  {ids['prep']} -->|logged| {ids['demo/mnist:v0']}" in src
    assert f"  {ids['demo/model:v0']} -->|used| {ids['eval']}" in src
    assert src.count("-->|") == len(graph.edges)


def test_pictures_escape_labels(repo):
    with repo.run(project="demo", name='say "hi" <now> & \\go', job_type="x") as run:
        v = run.log_artifact(_art("data"))
    graph = lineage.build(v)
    assert 'label="say \\"hi\\" <now> & \\\\go\\nx · manual · finished"' in lineage.dot(graph)
    assert '(["say #quot;hi#quot; #lt;now#gt; #amp; \\go<br/>' in lineage.mermaid(graph)


def test_to_json_lists_nodes_and_edges(pipeline):
    doc = lineage.build(pipeline["model"]).to_json()
    assert doc["root"] == f"version:{pipeline['model'].id}"
    assert {n["label"] for n in doc["nodes"]} >= {"demo/model:v0", "train", "eval"}
    assert {"source", "target", "kind"} == set(doc["edges"][0])
