"""The `cairn` command line: thin verbs over `Repository` (DESIGN.md, section "CLI").

The repository opens lazily from the global options, then CAIRN_* variables. Every failure
ends as one line on stderr, `cairn: error: ...`: exit 1 for errors, 2 for bad input.
Unexpected exceptions say so and show their traceback only with CAIRN_DEBUG=1.
"""

import errno
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from itertools import islice
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperGroup, TyperOption

from . import __version__, listing, search
from . import lineage as graphs
from .artifact import Artifact
from .console import RichProgress, human_size, log_warnings, print_table, when
from .durations import parse_duration
from .errors import CairnError, InvalidName, InvalidPolicy, InvalidQuery, NotFound
from .layout import namespace_for, namespace_prefix
from .manifest import Entry
from .names import Ref, check_name, check_user_alias
from .projects import ProjectInfo
from .repository import Repository
from .retention import RetentionPolicy
from .sizes import counted
from .version import ArtifactVersion

EXIT_ERROR, EXIT_USAGE = 1, 2

RefArg = Annotated[str, typer.Argument(help="project/name[:alias|:vN]")]
ProjectArg = Annotated[str, typer.Argument(help="The project.")]
PrincipalArg = Annotated[str, typer.Argument(help="A user or group.")]


class BadInput(Exception):
    """A malformed argument the user can fix (exit 2)."""


class _Argument(TyperArgument):
    """An argument shown as command lines show them: `PATH`, `[REF]`, no `<str>`."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _Option(TyperOption):
    """An option shown as `--name TEXT`, `--format [tree|dot]`, a flag with no value."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.metavar:
            return self.metavar
        typed = (super().display_type_rich(ctx) or "").strip("<>").removesuffix("...")
        if typed == "bool":
            return None  # a flag
        if typed.startswith("list[") and typed.endswith("]"):
            typed = typed[len("list[") : -1]
        typed = typed.removesuffix(" range")
        if "|" in typed:
            return f"[{typed}]"
        return _TYPE_NAMES.get(typed, typed.upper())


_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}


def _plain_help(command: Any, ctx: Any) -> None:
    """Give a command's parameters (and its subcommands') the conventional help above,
    instead of Typer's `<str>`, `<bool>`, `<list[str]>` and `{path}`."""
    helper = command.get_help_option(ctx)
    for param in [*command.params, *([helper] if helper is not None else [])]:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub, ctx)


class _Group(TyperGroup):
    """Turns every exception raised by a command into one stderr line and an exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _plain_help(self, ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                # the engine leaves a bar running when a transfer fails: clear it (and
                # restore the cursor) before any error line is printed
                opts = ctx.find_object(_Options)
                if opts is not None and opts.progress is not None:
                    opts.progress.finish()
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # exits and usage errors: typer reports them itself
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # `cairn ls | head`: typer quiets the broken pipe
            _unexpected(exc)
        except (BadInput, InvalidName, InvalidPolicy, InvalidQuery) as exc:
            _fail(str(exc), EXIT_USAGE)
        except CairnError as exc:
            _fail(str(exc), EXIT_ERROR)
        except Exception as exc:
            _unexpected(exc)


def _fail(message: str, code: int) -> NoReturn:
    line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    typer.echo(f"cairn: error: {line}", err=True)
    raise typer.Exit(code)


def _unexpected(exc: Exception) -> NoReturn:
    if os.environ.get("CAIRN_DEBUG"):
        traceback.print_exc(file=sys.stderr)
        hint = ""
    else:
        hint = " (set CAIRN_DEBUG=1 to see the traceback)"
    _fail(f"unexpected {type(exc).__name__}: {exc}{hint}", EXIT_ERROR)


app = typer.Typer(
    cls=_Group,
    name="cairn",
    help=(
        "Versioned, content-addressed artifact storage for data pipelines.\n\n"
        "Each change (a commit, an alias moved, a delete) is announced to the installed "
        "event plugins, e.g. a webhook or Prefect; CAIRN_EVENT_PLUGINS=none turns them "
        "off (docs/EVENTS.md)."
    ),
    no_args_is_help=True,
    # Markdown joins a paragraph's lines, so help reflows to the terminal's width.
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class _Options:
    catalog: str | None
    store: str | None
    home: str | None
    project: str | None
    repo: Repository | None = None
    progress: RichProgress | None = None


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cairn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    catalog: Annotated[
        str | None, typer.Option(help="Catalog URL (default: $CAIRN_CATALOG, else SQLite in home).")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="Store URL (default: $CAIRN_STORE, else home/store).")
    ] = None,
    home: Annotated[
        str | None, typer.Option(help="Local folder (default: $CAIRN_HOME, else ~/.cairn).")
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(help="Default project for refs without one (default: $CAIRN_PROJECT)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    ctx.obj = _Options(catalog, store, home, project)


def _repo(ctx: typer.Context) -> Repository:
    """The repository, opened on first use and closed when the command ends."""
    opts = ctx.find_object(_Options)
    assert opts is not None
    if opts.repo is None:
        # a bar on a terminal only: piped stderr stays quiet
        opts.progress = RichProgress() if _stderr_is_terminal() else None
        try:
            repo = Repository.open(
                opts.catalog,
                opts.store,
                home=opts.home,
                project=opts.project,
                progress=opts.progress,
            )
        except CairnError:
            raise
        except Exception as exc:
            raise CairnError(f"cannot open the repository: {exc}") from exc
        opts.repo = ctx.find_root().with_resource(repo)
    return opts.repo


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _collection(text: str, repo: Repository) -> Ref:
    """`project/name` (or `name` in the default project), without a version or alias."""
    if ":" in text:
        raise BadInput(f"expected project/name, not a version ref: {text!r}")
    return Ref.parse(text, default_project=repo.default_project)


# -- logging and reading ------------------------------------------------------------------


@app.command()
def put(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="A file or a folder to log.", show_default=False)],
    name: Annotated[
        str, typer.Option("-n", "--name", help="project/name, or name in the default project.")
    ],
    type_: Annotated[
        str | None,
        typer.Option("-t", "--type", help="dataset, model, ... (default: the collection's)."),
    ] = None,
    description: Annotated[
        str | None, typer.Option("-d", "--description", help="What this version holds.")
    ] = None,
    metadata: Annotated[str | None, typer.Option("-m", "--metadata", help="A JSON object.")] = None,
    alias: Annotated[
        list[str] | None, typer.Option("-a", "--alias", help="An alias to set (repeatable).")
    ] = None,
    follow_links: Annotated[
        bool,
        typer.Option(
            "--follow-links",
            help="Log what links pointing outside the folder point to (default: refuse them).",
        ),
    ] = False,
) -> None:
    """Log a file or folder as the next version; print its ref.

    Links that stay inside the folder are logged as links, empty folders are kept."""
    if not os.path.exists(path):
        raise BadInput(f"{path}: no such file or folder")
    meta = _json_object(metadata) if metadata is not None else {}
    repo = _repo(ctx)
    target = _collection(name, repo)
    kind = type_ or _existing_type(repo, target) or "dataset"
    art = Artifact(target.name, kind, description=description, metadata=meta)
    if os.path.isdir(path):
        art.add_dir(path, follow_links=follow_links)
    else:
        art.add_file(path)
    v = repo.log_artifact(art, project=target.project, aliases=alias or [])
    typer.echo(v.ref)
    sent = v.last_log.bytes_sent if v.last_log else 0
    summary = (
        f"{counted(v.file_count, 'file')}, {human_size(v.size)}, {human_size(sent)} newly stored"
    )
    if not v.created:
        typer.echo(f"unchanged: {v.ref} has this content already; {summary}", err=True)
    else:
        typer.echo(f"logged {v.ref}: {summary}", err=True)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"-m is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadInput('-m must be a JSON object, e.g. \'{"source": "s3"}\'')
    return value


def _existing_type(repo: Repository, ref: Ref) -> str | None:
    for c in repo.collections(ref.project):
        if c["name"] == ref.name:
            return str(c["type"])
    return None


@app.command()
def get(
    ctx: typer.Context,
    ref: RefArg,
    root: Annotated[
        str | None,
        typer.Option(help="Where to put the files (default: artifacts/PROJECT/NAME/vN)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write over local edits and files cairn did not make."),
    ] = False,
    link: Annotated[
        bool,
        typer.Option("--link", help="Hardlink read-only files from the cache instead of copying."),
    ] = False,
) -> None:
    """Check a version out (verified, from the cache when possible); print the folder.

    A previous checkout of the collection there is updated in place; local edits and
    files cairn did not make stop it unless --force."""
    v = _repo(ctx).artifact(ref)
    folder = v.download(root, force=force, link=link)
    typer.echo(folder)
    typer.echo(f"{v.ref}: {counted(v.file_count, 'file')}, {human_size(v.size)}", err=True)


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
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
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
        _search_versions(_repo(ctx), target, where or "", sort, limit, as_json)
        return
    repo = _repo(ctx)
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
        coll = _collection(target, repo)
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
            coll = _collection(target, repo)
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
    repo = _repo(ctx)
    opts = ctx.find_object(_Options)
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
    v = _repo(ctx).artifact(ref)
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
    d = _repo(ctx).diff(old, new)
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
    graph = graphs.build(_repo(ctx).artifact(ref), depth=depth)
    if format_ is LineageFormat.tree:
        # piped: no colours, and a width that never wraps a line
        Console(width=None if sys.stdout.isatty() else 10_000).print(graphs.tree(graph))
    elif format_ is LineageFormat.dot:
        typer.echo(graphs.dot(graph), nl=False)
    elif format_ is LineageFormat.mermaid:
        typer.echo(graphs.mermaid(graph), nl=False)
    else:
        typer.echo(json.dumps(graph.to_json(), indent=2))


# -- changing versions ----------------------------------------------------------------------

alias_app = typer.Typer(help="Add or remove a version's aliases.", no_args_is_help=True)
app.add_typer(alias_app, name="alias")


def _user_alias(alias: str) -> str:
    return check_user_alias(alias)


@alias_app.command("add")
def alias_add(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to tag.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. production.")],
) -> None:
    """Point ALIAS at the version REF names (moving it from another version if needed)."""
    name = _user_alias(alias)
    repo = _repo(ctx)
    v = repo.artifact(ref)
    try:
        before: ArtifactVersion | None = repo.artifact(f"{v.project}/{v.name}:{name}")
    except NotFound:
        before = None
    if name not in v.aliases:
        v.aliases.append(name)
        v.save()
    if before is not None and before != v:
        typer.echo(f"moved {name} from {before.ref} to {v.ref}", err=True)
    typer.echo(f"{v.ref}: {', '.join(v.aliases)}")


@alias_app.command("rm")
def alias_rm(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version that has the alias.")],
    alias: Annotated[str, typer.Argument(help="The alias to remove.")],
) -> None:
    """Remove ALIAS from the version REF names."""
    name = _user_alias(alias)
    v = _repo(ctx).artifact(ref)
    if name not in v.aliases:
        raise NotFound(f"{v.ref} has no alias {name!r} (it has: {', '.join(v.aliases) or '-'})")
    v.aliases.remove(name)
    v.save()
    typer.echo(f"{v.ref}: {', '.join(v.aliases) or '-'}")


@app.command()
def rm(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to delete.")],
    delete_aliases: Annotated[
        bool, typer.Option("--delete-aliases", help="Delete it even if aliases point at it.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Delete it even if it holds a protected alias (e.g. production)."
        ),
    ] = False,
) -> None:
    """Delete a version (its bytes go at the next `cairn gc`).

    A version holding a protected alias (`production` unless a retention policy names
    others) is deleted only with --force."""
    v = _repo(ctx).artifact(ref)
    v.delete(delete_aliases=delete_aliases, force=force)
    typer.echo(f"deleted {v.ref}")


@app.command()
def prune(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="project/name")],
    keep: Annotated[int, typer.Option(min=0, help="How many newest versions to keep.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
) -> None:
    """Delete versions without aliases beyond the newest KEEP."""
    repo = _repo(ctx)
    target = _collection(name, repo)
    doomed = repo.prune(f"{target.project}/{target.name}", keep=keep, dry_run=dry_run)
    for v in doomed:
        typer.echo(f"{'would delete' if dry_run else 'deleted'} {v.ref}")
    verb = "would delete" if dry_run else "deleted"
    summary = f"{counted(len(doomed), 'version')} of {target.project}/{target.name}"
    typer.echo(f"{verb} {summary}", err=True)


# -- retention (docs/RETENTION.md) ------------------------------------------------------------

retention_app = typer.Typer(
    help="Retention policies: which versions `cairn retain` keeps.", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")
TargetArg = Annotated[str, typer.Argument(help="A project, or project/name for one collection.")]


@retention_app.command("set")
def retention_set(
    ctx: typer.Context,
    target: TargetArg,
    keep_last: Annotated[
        str | None, typer.Option("--keep-last", metavar="N", help="Keep the newest N versions.")
    ] = None,
    keep_younger: Annotated[
        str | None,
        typer.Option(
            "--keep-younger",
            metavar="DURATION",
            help="Keep versions younger than this: 30d, 12h, 2w.",
        ),
    ] = None,
    keep_aliased: Annotated[
        bool, typer.Option("--keep-aliased", help="Keep every version that has an alias.")
    ] = False,
    keep_alias: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-alias", metavar="ALIAS", help="Keep versions with this alias (repeatable)."
        ),
    ] = None,
    keep_used: Annotated[
        str | None,
        typer.Option(
            "--keep-used",
            metavar="DURATION",
            help="Keep versions a run used as an input within this long: 30d.",
        ),
    ] = None,
    protect: Annotated[
        list[str] | None,
        typer.Option(
            "--protect",
            metavar="ALIAS",
            help="An alias no command deletes a version of (repeatable; replaces the "
            "inherited ones, by default production).",
        ),
    ] = None,
    no_protect: Annotated[
        bool, typer.Option("--no-protect", help="Protect no alias here (not even production).")
    ] = False,
) -> None:
    """Declare the policy of a project or collection, replacing any it had.

    A version is kept if ANY rule keeps it; the newest version, versions holding a
    protected alias and versions in use are always kept. A collection's policy replaces
    its project's keep rules."""
    if protect and no_protect:
        raise BadInput("--protect and --no-protect contradict each other: give one")
    last = _count_option(keep_last)
    policy = RetentionPolicy(
        keep_last=last,
        keep_younger=keep_younger,  # type: ignore[arg-type]  # parsed by the policy
        keep_aliased=True if keep_aliased else tuple(keep_alias or ()),
        keep_used=keep_used,  # type: ignore[arg-type]
        protect=() if no_protect else tuple(protect) if protect else None,
    )
    saved = _repo(ctx).set_retention(target, policy)
    typer.echo(f"{saved.scope}: {saved}")


def _count_option(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidPolicy(
            f"invalid --keep-last {text!r}: give the number of newest versions to keep, 0 or more"
        ) from None
    if value < 0:
        raise InvalidPolicy(f"invalid --keep-last {text!r}: a count cannot be negative")
    return value


@retention_app.command("show")
def retention_show(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(help="A project or project/name (default: every declared policy)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show declared policies, or the one that applies to a project or collection."""
    repo = _repo(ctx)
    if target is None or "/" not in target:
        found = repo.retention_policies(target)
        if as_json:
            typer.echo(json.dumps([p.to_json() for p in found], indent=2))
            return
        print_table(["scope", "keep", "protect"], [_policy_row(p) for p in found])
        if not found:
            typer.echo("no retention policy: retain deletes nothing", err=True)
        return
    policy = repo.retention(target, effective=True)
    protected = repo.protected_aliases(target)
    if as_json:
        doc = policy.to_json() if policy is not None else {"scope": None}
        typer.echo(json.dumps({**doc, "target": target, "protect": list(protected)}, indent=2))
        return
    if policy is None:
        typer.echo(f"{target}: no policy (retain deletes nothing)")
    else:
        typer.echo(f"{target}: policy of {policy.scope}: {policy}")
    typer.echo(f"protected aliases: {', '.join(protected) or 'none'}")


def _policy_row(p: RetentionPolicy) -> list[str]:
    keep = "; ".join(p.rules()) or "nothing deleted (no keep rule)"
    protect = "inherited" if p.protect is None else ", ".join(p.protect) or "none"
    return [p.scope, keep, protect]


@retention_app.command("rm")
def retention_rm(ctx: typer.Context, target: TargetArg) -> None:
    """Remove a project's or collection's policy."""
    if not _repo(ctx).remove_retention(target):
        raise NotFound(f"{target} has no retention policy of its own")
    typer.echo(f"removed the retention policy of {target}")


@app.command()
def retain(
    ctx: typer.Context,
    target: Annotated[
        str | None, typer.Argument(help="A project or project/name (default: every one).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would go; change nothing.")
    ] = False,
) -> None:
    """Apply the retention policies: delete the versions no keep rule keeps.

    Prints each version deleted (or that would be) and the bytes `cairn gc` would then
    free; run gc after it to free them. Versions in use by writers are kept."""
    report = _repo(ctx).retain(target, dry_run=dry_run)
    *lines, summary = str(report).splitlines()
    for line in lines:
        typer.echo(line)
    typer.echo(summary, err=True)


# -- maintenance ----------------------------------------------------------------------------


@app.command()
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go.")] = False,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="Keep unneeded objects younger than this (90s, 30m, 1h, 2d; 0 for none): "
            "a writer may be about to commit them.",
        ),
    ] = "1h",
) -> None:
    """Delete stored objects no live version needs.

    Only in store namespaces this catalog owns, only what was written longer ago than
    the grace period, and only after recording what goes under gc/ in the store.
    Refused when the store belongs to another repository's catalog.
    """
    typer.echo(str(_repo(ctx).gc(dry_run=dry_run, grace=parse_duration(grace))))


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    what: Annotated[
        str,
        typer.Argument(
            metavar="REF|PROJECT",
            help="A project (all of it), project/name (every version) or a ref naming one "
            "version (project/name:v3, project/name:production).",
        ),
    ],
    to: Annotated[
        str,
        typer.Option("--to", metavar="STORE_URL", help="The target repository's store."),
    ],
    to_catalog: Annotated[
        str,
        typer.Option(
            "--to-catalog",
            metavar="URL",
            help="The target repository's catalog (sqlite:///path/catalog.db, "
            "postgresql+psycopg://...).",
        ),
    ],
    to_storage_options: Annotated[
        str | None,
        typer.Option(
            "--to-storage-options",
            metavar="JSON",
            help="fsspec options for the target store (credentials, endpoint), as JSON.",
        ),
    ] = None,
) -> None:
    """Copy versions into another repository, sending only the objects it lacks.

    Version numbers, aliases, metadata, descriptions, lineage, the project's visibility
    and members come along. Refused, with nothing written, when the target uses one of
    the version numbers for other content. Running it again brings the copy up to date.
    """
    options = None
    if to_storage_options:
        try:
            options = json.loads(to_storage_options)
        except ValueError as exc:
            raise BadInput(f"--to-storage-options is not JSON: {exc}") from exc
        if not isinstance(options, dict):
            raise BadInput("--to-storage-options must be a JSON object")
    source = _repo(ctx)
    target = ctx.find_root().with_resource(
        Repository.open(to_catalog, to, storage_options=options, home=source.home)
    )
    typer.echo(str(source.export(what, to=target)))


cache_app = typer.Typer(help="The local download cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("cleanup")
def cache_cleanup(
    ctx: typer.Context,
    size: Annotated[str, typer.Argument(help="Largest size to keep: 500MB, 1GB, 10GiB, bytes.")],
) -> None:
    """Evict least recently used files until the cache holds at most SIZE.

    The block indexes that cairn:// reads keep in the cache folder count too (0 removes
    them all; objects are then read whole once more).
    """
    limit = parse_size(size)
    report = _repo(ctx).cache.cleanup(max_bytes=limit)
    indexes = report.indexes_removed
    also = f" and {counted(indexes, 'block index', 'block indexes')}" if indexes else ""
    typer.echo(
        f"removed {counted(report.files_removed, 'file')}{also} "
        f"({human_size(report.bytes_freed)}); the cache holds {human_size(report.bytes_kept)}"
    )


_SIZE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgtpe])(i?))?b?$", re.IGNORECASE)
_POWERS = "kmgtpe"


def parse_size(text: str) -> int:
    """'1GB' -> 10**9, '10GiB' -> 10 * 2**30, '500mb', '1.5G', '1024' -> bytes."""
    m = _SIZE.match(text.strip())
    if not m:
        raise BadInput(f"invalid size {text!r}: use bytes or a unit, e.g. 500MB, 1GB or 10GiB")
    number, unit, binary = m.groups()
    power = _POWERS.index(unit.lower()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


@app.command()
def verify(
    ctx: typer.Context,
    ref: Annotated[str | None, typer.Argument(help="One version (default: all).")] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Store a good copy of each bad object found on this machine: in the cache, "
            "in files logged from here, or in the --from folders.",
        ),
    ] = False,
    folders: Annotated[
        list[str] | None,
        typer.Option(
            "--from",
            metavar="DIR",
            help="A folder holding good copies (a checkout, the original data), matched by "
            "path and by content; repeatable. Implies --repair.",
        ),
    ] = None,
    catalog: Annotated[
        bool,
        typer.Option(
            "--catalog",
            help="Check instead that the catalog holds what the store log says: one line "
            "per difference (versions, aliases, metadata, runs, projects, members).",
        ),
    ] = False,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help="With --catalog: first apply what the log holds and the catalog lacks "
            "(changes whose catalog commit never happened).",
        ),
    ] = False,
) -> None:
    """Check every stored object against its digest; list the versions that need a bad one.

    Exits 1 while an object is missing or corrupt (with --catalog: while catalog and
    store log differ). Drops cached files that changed.
    """
    if reconcile and not catalog:
        raise BadInput("--reconcile goes with --catalog")
    if catalog:
        if ref is not None or repair or folders:
            raise BadInput("--catalog checks the whole repository: no REF, --repair or --from")
        found = _repo(ctx).verify_catalog(reconcile=reconcile)
        typer.echo(str(found))
        if not found.ok:
            raise typer.Exit(EXIT_ERROR)
        return
    for folder in folders or []:
        if not os.path.isdir(folder):
            raise BadInput(f"--from {folder}: no such folder")
    report = _repo(ctx).verify(ref, repair=repair or bool(folders), folders=folders or [])
    typer.echo(str(report))
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)


@app.command()
def recover(
    ctx: typer.Context,
    into: Annotated[
        str | None,
        typer.Option(
            "--into",
            metavar="CATALOG_URL",
            help="Rebuild into this catalog (an empty SQLite file or PostgreSQL database) "
            "instead of the repository's own.",
        ),
    ] = None,
) -> None:
    """Rebuild a lost or empty catalog from the store alone.

    Every version, its number, type, metadata, description, aliases, lineage, runs,
    projects and access settings come back from the store log, and the catalog is bound
    to the store's repository. A catalog of this repository is reconciled; one of another
    is refused. Recover into a new catalog only when the old one is lost: two catalogs of
    one store would hand out the same version numbers.
    """
    typer.echo(str(_repo(ctx).recover(into=into)))


@app.command(name="compact-log")
def compact_log(ctx: typer.Context) -> None:
    """Fold the store log's records into snapshots, so recover reads few objects."""
    typer.echo(str(_repo(ctx).compact_log()))


# -- projects -------------------------------------------------------------------------------

project_app = typer.Typer(help="Projects and who may use them.", no_args_is_help=True)
app.add_typer(project_app, name="project")


class Visibility(str, Enum):
    private = "private"
    public = "public"
    open = "open"


class Role(str, Enum):
    reader = "reader"
    writer = "writer"
    admin = "admin"


_SINGLE_USER = (
    "note: the SQLite catalog is single-user: access settings are recorded, and enforced "
    "once the repository moves to PostgreSQL (docs/ACCESS.md)"
)


@project_app.command("show")
def project_show(ctx: typer.Context, name: ProjectArg) -> None:
    """Show a project's visibility, members, your access and its collections."""
    repo = _repo(ctx)
    info = repo.project(name)
    created = when(info.created_at) + (f" by {info.created_by}" if info.created_by else "")
    members = ", ".join(f"{m.principal} ({m.role})" for m in info.members)
    store = namespace_prefix(namespace_for(info.name, info.visibility)) or "objects/ (shared)"
    fields = [
        ("project", info.name),
        ("visibility", info.visibility),
        ("stored in", f"{store}, for new versions"),
        ("created", created),
        ("members", members or "-"),
        ("your access", info.access if info.enforced else "admin (single-user SQLite catalog)"),
    ]
    for key, value in fields:
        typer.echo(f"{key:<12} {value}")
    typer.echo("")
    rows = [[c["name"], c["type"], str(c["versions"])] for c in repo.collections(info.name)]
    print_table(["collection", "type", "versions"], rows)


@project_app.command("create")
def project_create(
    ctx: typer.Context,
    name: ProjectArg,
    visibility: Annotated[
        Visibility,
        typer.Option(help="private: members only; public: all read; open: all read and write."),
    ] = Visibility.private,
) -> None:
    """Create a project; you become its admin."""
    info = _repo(ctx).create_project(check_name(name, kind="project"), visibility=visibility.value)
    typer.echo(f"created project {info.name} ({info.visibility})")
    _note_single_user(info)


@project_app.command("grant")
def project_grant(
    ctx: typer.Context,
    name: ProjectArg,
    principal: PrincipalArg,
    role: Annotated[Role, typer.Option(help="reader, writer or admin.")] = Role.reader,
) -> None:
    """Give a database user or group a role on a project (replacing any it had)."""
    info = _repo(ctx).grant(check_name(name, kind="project"), principal, role.value)
    typer.echo(f"{principal} is {role.value} of project {info.name}")
    _note_single_user(info)


@project_app.command("revoke")
def project_revoke(ctx: typer.Context, name: ProjectArg, principal: PrincipalArg) -> None:
    """Take a user's or group's role on a project away."""
    info = _repo(ctx).revoke(check_name(name, kind="project"), principal)
    typer.echo(f"{principal} has no role in project {info.name} now")
    _note_single_user(info)


@project_app.command("visibility")
def project_visibility(
    ctx: typer.Context,
    name: ProjectArg,
    visibility: Annotated[Visibility, typer.Argument(help="private, public or open.")],
) -> None:
    """Change who may read and write a project without a role."""
    info = _repo(ctx).set_visibility(check_name(name, kind="project"), visibility.value)
    typer.echo(f"project {info.name} is {info.visibility}")
    if info.note:
        typer.echo(f"note: {info.note}")
    _note_single_user(info)


def _note_single_user(info: ProjectInfo) -> None:
    if not info.enforced:
        typer.echo(_SINGLE_USER, err=True)


@app.command("ui")
def ui_(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
) -> None:
    """Serve the read-only web UI: projects, versions, files, lineage, runs (the ui extra)."""
    from .ui.serve import serve

    serve(_repo(ctx), host=host, port=port)


def main() -> None:
    """Console-script entry point (`cairn`, `python -m cairn`)."""
    log_warnings(debug=bool(os.environ.get("CAIRN_DEBUG")))
    app(prog_name="cairn")
