"""`cairn put` and `cairn get`: log a folder as a version, check one out."""

import json
import os
from typing import Annotated, Any

import typer

from ..console import human_size
from ..engine.artifact import Artifact
from ..foundation.names import Ref
from ..foundation.sizes import counted
from ..repository import Repository
from .frame import BadInput, RefArg, app, collection_ref, open_repo


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
    repo = open_repo(ctx)
    target = collection_ref(name, repo)
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
    v = open_repo(ctx).artifact(ref)
    folder = v.download(root, force=force, link=link)
    typer.echo(folder)
    typer.echo(f"{v.ref}: {counted(v.file_count, 'file')}, {human_size(v.size)}", err=True)
