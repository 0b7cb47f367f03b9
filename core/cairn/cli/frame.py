"""The command line's frame: the Typer app, its global options, the opened repository, and
the rule that every failure ends as one line on stderr."""

import errno
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from .. import __version__
from ..console import RichProgress, log_warnings
from ..foundation.errors import CairnError, InvalidName, InvalidPolicy, InvalidQuery
from ..foundation.names import Ref
from ..repository import Repository

EXIT_ERROR, EXIT_USAGE = 1, 2

RefArg = Annotated[str, typer.Argument(help="project/name[:alias|:vN]")]
ProjectArg = Annotated[str, typer.Argument(help="The project.")]
PrincipalArg = Annotated[str, typer.Argument(help="A user or group.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


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
                opts = ctx.find_object(Options)
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
class Options:
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
    ctx.obj = Options(catalog, store, home, project)


def open_repo(ctx: typer.Context) -> Repository:
    """The repository, opened on first use and closed when the command ends."""
    opts = ctx.find_object(Options)
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


def collection_ref(text: str, repo: Repository) -> Ref:
    """`project/name` (or `name` in the default project), without a version or alias."""
    if ":" in text:
        raise BadInput(f"expected project/name, not a version ref: {text!r}")
    return Ref.parse(text, default_project=repo.default_project)


def main() -> None:
    """Console-script entry point (`cairn`, `python -m cairn`)."""
    log_warnings(debug=bool(os.environ.get("CAIRN_DEBUG")))
    app(prog_name="cairn")
