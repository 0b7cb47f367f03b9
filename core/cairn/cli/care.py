"""Keeping a repository healthy: `gc`, `verify`, `recover`, `compact-log`, `export` and the
cache."""

import json
import os
import re
from typing import Annotated

import typer

from ..console import human_size
from ..foundation.durations import parse_duration
from ..foundation.sizes import counted
from ..repository import Repository
from .frame import EXIT_ERROR, BadInput, app, open_repo


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
    typer.echo(str(open_repo(ctx).gc(dry_run=dry_run, grace=parse_duration(grace))))


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
    source = open_repo(ctx)
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
    report = open_repo(ctx).cache.cleanup(max_bytes=limit)
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
        found = open_repo(ctx).verify_catalog(reconcile=reconcile)
        typer.echo(str(found))
        if not found.ok:
            raise typer.Exit(EXIT_ERROR)
        return
    for folder in folders or []:
        if not os.path.isdir(folder):
            raise BadInput(f"--from {folder}: no such folder")
    report = open_repo(ctx).verify(ref, repair=repair or bool(folders), folders=folders or [])
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
    typer.echo(str(open_repo(ctx).recover(into=into)))


@app.command(name="compact-log")
def compact_log(ctx: typer.Context) -> None:
    """Fold the store log's records into snapshots, so recover reads few objects."""
    typer.echo(str(open_repo(ctx).compact_log()))
