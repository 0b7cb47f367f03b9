"""`create_app`: the read-only web UI as a FastAPI application.

    from cairn import Repository
    from cairn.ui import create_app
    app = create_app(Repository.open())        # or create_app(Repository.open): opened lazily

`cairn ui` serves it with uvicorn; the Airflow provider mounts it in Airflow's API server.
Every route is a GET: the UI has no verb that writes to the catalog or the store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from starlette.exceptions import HTTPException

from .. import __version__, listing
from ..console import human_size
from ..foundation.errors import CairnError, InvalidName, NotFound, PermissionDenied
from ..repository import Repository
from . import browse, files, graph, links, runs, versions
from .pages import route_path
from .state import Opener, RunLinks, UIState

HERE = Path(__file__).resolve().parent

#: what every HTML page may load: its own scripts and styles, nothing from elsewhere
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'self'"
)


def create_app(
    repository: Repository | Opener,
    *,
    title: str = "cairn",
    dependencies: Sequence[Depends] = (),
    login_url: Callable[[str], str] | None = None,
    run_links: RunLinks | None = None,
) -> FastAPI:
    """The UI over `repository`: a `Repository`, or a function opening one on first use.

    `dependencies` run before every route (the Airflow plugin passes Airflow's own
    authentication check, so the UI inside Airflow shows only to its signed-in users);
    a page they refuse with 401 sends the browser to `login_url(back_to_this_page)`.
    `run_links(run)` adds links from a run's page to the orchestrator's own page of it.
    """
    state = UIState(repository, run_links=run_links)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title=title,
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        dependencies=list(dependencies),
        lifespan=lifespan,
    )
    app.state.cairn = state
    app.state.title = title
    templates = _templates(title)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (browse, versions, files, graph, runs):
        module.pages.mount(app, templates)
    for module in (files, graph):
        app.include_router(module.router)
    _errors(app, templates, login_url)

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return _redirect(request, links.projects())

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        return response

    return app


def _redirect(request: Request, path: str) -> Response:
    root = request.scope.get("root_path", "")
    return Response(status_code=307, headers={"Location": root + path})


def _templates(title: str) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.autoescape = True  # every value from the catalog is text, never markup
    env.globals.update(
        title=title,
        version=__version__,
        links=links,
        href=_href,
        static=_static,
    )
    env.filters.update(
        size=human_size,
        number=_number,
        ago=_ago,
        when=_when,
        cell=listing.cell,
        plural=_plural,
        seconds_between=_duration,
    )
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)
    return templates


@pass_context
def _href(context: Any, path: str) -> str:
    """`path` of the UI as the browser must ask for it (under the mount prefix)."""
    request: Request = context["request"]
    return str(request.scope.get("root_path", "")) + path


@pass_context
def _static(context: Any, name: str) -> str:
    return str(_href(context, f"/static/{name}")) + f"?v={__version__}"


def _number(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def _plural(n: int, noun: str) -> str:
    """'1 file', '2 files', '1,204 files'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _parse(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None


def _when(moment: str | None) -> str:
    parsed = _parse(moment)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else "-"


def _duration(end: str, start: str) -> str:
    """'850 ms', '42 s', '3 min 5 s', '2 h 10 min' between two ISO timestamps."""
    first, last = _parse(start), _parse(end)
    if first is None or last is None:
        return ""
    seconds = (last - first).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _ago(moment: str | None) -> str:
    """'3 hours ago'; the page shows the exact time on hover (`when`)."""
    parsed = _parse(moment)
    if parsed is None:
        return "-"
    seconds = int((datetime.now(timezone.utc) - parsed).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, length in (("year", 31536000), ("month", 2592000), ("day", 86400), ("hour", 3600)):
        if seconds >= length:
            n = seconds // length
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    n = seconds // 60
    return f"{n} minute{'s' if n > 1 else ''} ago"


def _errors(
    app: FastAPI, templates: Jinja2Templates, login_url: Callable[[str], str] | None
) -> None:
    """Bad input and missing things are pages (or JSON under /api), never tracebacks."""

    def render(request: Request, status: int, message: str) -> Response:
        if route_path(request).startswith(links.API + "/"):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        context = {"status": status, "message": message}
        return templates.TemplateResponse(request, "error.html", context, status_code=status)

    def answer(status: int) -> Callable[[Request, Exception], Response]:
        return lambda request, exc: render(request, status, str(exc))

    statuses = {NotFound: 404, InvalidName: 404, PermissionDenied: 403, CairnError: 500}
    for error, status in statuses.items():
        app.add_exception_handler(error, answer(status))

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = ", ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return render(request, 400, f"bad request ({where})")

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        api = route_path(request).startswith(links.API + "/")
        if exc.status_code == 401 and login_url is not None and not api:
            here = str(request.scope.get("root_path", "")) + route_path(request)
            return Response(status_code=307, headers={"Location": login_url(here)})
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 405:
            message = "the cairn UI only reads: use the cairn CLI or API to change things"
        return render(request, exc.status_code, message)

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> Response:
        return render(request, 500, f"unexpected {type(exc).__name__}: {exc}")
