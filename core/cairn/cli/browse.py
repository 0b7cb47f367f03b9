"""Reading the catalog: `cairn ls`, `runs`, `show`, `diff` and `lineage`."""

import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from itertools import islice
from typing import Annotated, Any

import typer
from rich.console import Console

from .. import lineage as graphs
from .. import listing, search
from ..console import human_size, print_table, when
from ..foundation.errors import NotFound
from ..foundation.layout import namespace_prefix
from ..foundation.manifest import Entry
from ..foundation.names import check_name
from ..foundation.sizes import counted
from ..repository import Repository
from ..version import ArtifactVersion
from .frame import JsonOpt, Options, RefArg, app, collection_ref, open_repo

WhereOpt = Annotated[
    str | None,
    typer.Option("--where", "-w", help='Only what matches this query, e.g. "metadata.acc > 0.9".'),
]
SortOpt = Annotated[
    str | None, typer.Option("--sort", "-s", help="Sort by a field; -field for descending.")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", "-n", min=0, help="Show at most N (default 100).")
]
DEFAULT_LIMIT = 100


@app.command("ls")
def list_(
    ctx: typer.Context,
    target: Annotated[
        str | None, typer.Argument(help="A project, or project/name for its versions.")
    ] = None,
    where: WhereOpt = None,
    sort: SortOpt = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List projects and collections, a project's collections, or a collection's versions.

    With --where, --sort, --limit or --json: search versions (of every project you may
    read, of the project, or of the collection TARGET names); docs/SEARCH.md.
    """
    if where is not None or sort is not None or limit is not None or as_json:
        search.check("versions", where or "", sort)  # before anything is opened or made
        _search_versions(open_repo(ctx), target, where or "", sort, limit, as_json)
        return
    repo = open_repo(ctx)
    if target is None:
        known = {c["project"] for c in repo.collections()}
        rows = [
            [c["project"], c["name"], c["type"], str(c["versions"])] for c in repo.collections()
        ]
        rows += [[p, "-", "-", "0"] for p in repo.projects() if p not in known]
        print_table(["project", "collection", "type", "versions"], sorted(rows))
    elif "/" not in target:
        project = check_name(target, kind="project")
        if project not in repo.projects():
            repo.project(project)  # PermissionDenied if it exists but is not yours to read
            raise NotFound(f"project {project!r} not found; `cairn ls` lists them")
        rows = [[c["name"], c["type"], str(c["versions"])] for c in repo.collections(project)]
        print_table(["collection", "type", "versions"], rows)
    else:
        coll = collection_ref(target, repo)
        rows = [
            [
                v.version,
                v.state,
                human_size(v.size),
                str(v.file_count),
                ", ".join(v.aliases),
                when(v.created_at),
            ]
            for v in repo.versions(f"{coll.project}/{coll.name}")
        ]
        print_table(["version", "state", "size", "files", "aliases", "created"], rows)


def _search_versions(
    repo: Repository,
    target: str | None,
    where: str,
    sort: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    project = name = None
    if target:
        if "/" in target:
            coll = collection_ref(target, repo)
            project, name = coll.project, coll.name
        else:
            project = check_name(target, kind="project")
    limit = DEFAULT_LIMIT if limit is None else limit
    found = repo.search_versions(where, project=project, name=name, order_by=sort, limit=limit)
    if as_json:
        typer.echo(json.dumps([listing.version_doc(v) for v in found], indent=2))
    else:
        headers, rows, hidden = listing.version_table(
            found, first_keys=listing.named_keys("metadata", where, sort)
        )
        print_table(headers, rows)
        _note_hidden(hidden, "metadata key")
    _note_more(
        len(found), limit, lambda: repo.count_versions(where, project=project, name=name), "version"
    )


@app.command()
def runs(
    ctx: typer.Context,
    project: Annotated[
        str | None,
        typer.Option(help="Runs of this project (default: $CAIRN_PROJECT, else every project)."),
    ] = None,
    where: WhereOpt = None,
    sort: SortOpt = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search runs: their config, summary metrics and state (docs/SEARCH.md), newest first.

    The best run of a sweep: cairn runs --where "group = 'sweep-1'" --sort -summary.val_acc
    """
    search.check("runs", where or "", sort)  # before anything is opened or made
    repo = open_repo(ctx)
    opts = ctx.find_object(Options)
    scope = project or (opts.project if opts else None) or os.environ.get("CAIRN_PROJECT") or None
    where = where or ""
    limit = DEFAULT_LIMIT if limit is None else limit
    found = repo.search_runs(where, project=scope, order_by=sort, limit=limit)
    if as_json:
        typer.echo(json.dumps([listing.run_doc(r) for r in found], indent=2))
    else:
        headers, rows, hidden = listing.run_table(
            found,
            first_keys=listing.named_keys("summary", where, sort),
            config_keys=listing.named_keys("config", where, sort),
        )
        print_table(headers, rows)
        _note_hidden(hidden, "summary key")
    _note_more(len(found), limit, lambda: repo.count_runs(where, project=scope), "run")


def _note_hidden(hidden: int, noun: str) -> None:
    if hidden:
        typer.echo(f"{counted(hidden, f'more {noun}')} not shown: --json shows them", err=True)


def _note_more(shown: int, limit: int, total: Callable[[], int], noun: str) -> None:
    """On stderr: nothing matched, or the limit cut the list short."""
    if shown == 0:
        typer.echo(f"no {noun} matches", err=True)
    elif shown == limit and (n := total()) > shown:
        typer.echo(f"showing {shown} of {n} {noun}s: --limit N shows more", err=True)


@app.command()
def show(
    ctx: typer.Context,
    ref: RefArg,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a version: state, digest, size, aliases, metadata, lineage and files."""
    v = open_repo(ctx).artifact(ref)
    doc = _version_doc(v, files=as_json)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    run = doc["logged_by"]
    fields = [
        ("ref", f"{v.ref} ({v.type})"),
        ("state", v.state),
        ("digest", v.digest or "-"),
        ("size", f"{_exact_size(v.size)}, {counted(v.file_count, 'file')}"),
        ("stored in", namespace_prefix(v.namespace) or "objects/ (shared)"),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("created", when(v.created_at)),
        ("description", v.description or "-"),
        ("metadata", json.dumps(v.metadata, sort_keys=True) if v.metadata else "-"),
        ("logged by", f"run {run['name'] or run['id']} ({run['kind']})" if run else "-"),
    ]
    for key, value in fields:
        typer.echo(f"{key:<12} {value}")
    if v.digest is None:
        typer.echo("files        known once the version is finished")
        return
    typer.echo("")
    # a page of rows at a time: a large version's files are never all in memory
    entries = iter(v.manifest.values())
    first = True
    while page := [[e.path, *_what(_file_doc(e))] for e in islice(entries, _SHOW_PAGE)]:
        print_table(["path", "size", "digest / reference"], page, header=first)
        first = False


def _what(f: dict[str, Any]) -> list[str]:
    """Size and content column of `show` for a file, a link or an empty folder."""
    if f["kind"] == "link":
        return ["-", f"-> {f['target']}"]
    if f["kind"] == "dir":
        return ["-", "(empty folder)"]
    return [human_size(f["size"]), f["ref"] or (f["digest"] or "")[:16]]


def _exact_size(n: int) -> str:
    return human_size(n) if n < 1024 else f"{human_size(n)} ({n} bytes)"


#: rows of files `cairn show` aligns and prints at a time
_SHOW_PAGE = 5000


def _version_doc(v: ArtifactVersion, *, files: bool = True) -> dict[str, Any]:
    run = v.logged_by()
    listed: list[dict[str, Any]] | None = None  # pending: the manifest exists once finished
    if files and v.digest is not None:
        listed = [_file_doc(e) for e in v.manifest.values()]
    return {
        **listing.version_doc(v),
        "namespace": v.namespace,
        "logged_by": {"id": run.id, "name": run.name, "kind": run.kind} if run else None,
        "files": listed,
    }


def _file_doc(e: Entry) -> dict[str, Any]:
    doc = {"path": e.path, "kind": e.kind, "size": e.size, "digest": e.digest, "ref": e.ref}
    if e.target is not None:
        doc["target"] = e.target
    return doc


@app.command()
def diff(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="The version to compare from.")],
    new: Annotated[str, typer.Argument(help="The version to compare to.")],
) -> None:
    """Paths added (A), removed (D) and modified (M) going from OLD to NEW."""
    d = open_repo(ctx).diff(old, new)
    for mark, paths in (("A", d.added), ("D", d.removed), ("M", d.modified)):
        for p in paths:
            typer.echo(f"{mark}  {p}")
    counts = f"{len(d.added)} added, {len(d.removed)} removed, {len(d.modified)} modified"
    typer.echo(counts if d else "no differences", err=True)


class LineageFormat(str, Enum):
    tree = "tree"
    dot = "dot"
    mermaid = "mermaid"
    json = "json"


@app.command()
def lineage(
    ctx: typer.Context,
    ref: RefArg,
    format_: Annotated[
        LineageFormat, typer.Option("--format", "-f", help="tree, dot (Graphviz), mermaid or json.")
    ] = LineageFormat.tree,
    depth: Annotated[
        int | None, typer.Option(min=0, help="Edges to follow each way (default: all).")
    ] = None,
) -> None:
    """Which run logged a version, what it used, who used the version and what they logged."""
    graph = graphs.build(open_repo(ctx).artifact(ref), depth=depth)
    if format_ is LineageFormat.tree:
        # piped: no colours, and a width that never wraps a line
        Console(width=None if sys.stdout.isatty() else 10_000).print(graphs.tree(graph))
    elif format_ is LineageFormat.dot:
        typer.echo(graphs.dot(graph), nl=False)
    elif format_ is LineageFormat.mermaid:
        typer.echo(graphs.mermaid(graph), nl=False)
    else:
        typer.echo(json.dumps(graph.to_json(), indent=2))
