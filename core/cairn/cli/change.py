"""Changing versions: aliases, `rm`, `prune`, and the retention policies `retain` applies."""

import json
from typing import Annotated

import typer

from ..console import print_table
from ..foundation.errors import InvalidPolicy, NotFound
from ..foundation.names import check_user_alias
from ..foundation.retention import RetentionPolicy
from ..foundation.sizes import counted
from ..version import ArtifactVersion
from .frame import BadInput, JsonOpt, app, collection_ref, open_repo

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
    repo = open_repo(ctx)
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
    v = open_repo(ctx).artifact(ref)
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
    v = open_repo(ctx).artifact(ref)
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
    repo = open_repo(ctx)
    target = collection_ref(name, repo)
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
    saved = open_repo(ctx).set_retention(target, policy)
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
    repo = open_repo(ctx)
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
    if not open_repo(ctx).remove_retention(target):
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
    report = open_repo(ctx).retain(target, dry_run=dry_run)
    *lines, summary = str(report).splitlines()
    for line in lines:
        typer.echo(line)
    typer.echo(summary, err=True)
