"""`cairn project ...` (who may use a project) and `cairn ui`."""

from enum import Enum
from typing import Annotated

import typer

from ..console import print_table, when
from ..foundation.layout import namespace_for, namespace_prefix
from ..foundation.names import check_name
from ..foundation.projects import ProjectInfo
from .frame import PrincipalArg, ProjectArg, app, open_repo

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
    repo = open_repo(ctx)
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
    info = open_repo(ctx).create_project(
        check_name(name, kind="project"), visibility=visibility.value
    )
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
    info = open_repo(ctx).grant(check_name(name, kind="project"), principal, role.value)
    typer.echo(f"{principal} is {role.value} of project {info.name}")
    _note_single_user(info)


@project_app.command("revoke")
def project_revoke(ctx: typer.Context, name: ProjectArg, principal: PrincipalArg) -> None:
    """Take a user's or group's role on a project away."""
    info = open_repo(ctx).revoke(check_name(name, kind="project"), principal)
    typer.echo(f"{principal} has no role in project {info.name} now")
    _note_single_user(info)


@project_app.command("visibility")
def project_visibility(
    ctx: typer.Context,
    name: ProjectArg,
    visibility: Annotated[Visibility, typer.Argument(help="private, public or open.")],
) -> None:
    """Change who may read and write a project without a role."""
    info = open_repo(ctx).set_visibility(check_name(name, kind="project"), visibility.value)
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
    from ..ui.serve import serve

    serve(open_repo(ctx), host=host, port=port)
