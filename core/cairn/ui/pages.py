"""Pages: each is one function returning a JSON document, served twice by `Pages.mount`:
as HTML (the document rendered by a template) at its path, and as the document itself
under /api at the same path. A page therefore always has a JSON twin that shows exactly
what the page shows. A document with a `status` (400 for a malformed query) is served
with it, still rendered: the page shows the error beside the search box.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates

from . import links

Handler = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class PageSpec:
    path: str
    template: str
    handler: Handler


class Pages:
    """The pages of one module; `app.py` mounts every module's."""

    def __init__(self) -> None:
        self.specs: list[PageSpec] = []

    def page(self, path: str, template: str) -> Callable[[Handler], Handler]:
        """Serve the decorated function at `path` (HTML) and `/api` + `path` (JSON)."""

        def register(fn: Handler) -> Handler:
            self.specs.append(PageSpec(path, template, fn))
            return fn

        return register

    def mount(self, app: FastAPI, templates: Jinja2Templates) -> None:
        for spec in self.specs:
            name = spec.handler.__name__
            app.add_api_route(
                spec.path,
                _html_endpoint(spec, templates),
                methods=["GET"],
                response_class=HTMLResponse,
                name=name,
                include_in_schema=False,
            )
            app.add_api_route(
                links.api(spec.path),
                _json_endpoint(spec),
                methods=["GET"],
                response_class=JSONResponse,
                name=f"api_{name}",
            )


def _signature(fn: Handler) -> inspect.Signature:
    """The handler's signature with its annotations resolved (FastAPI reads the
    parameters from it; string annotations would be looked up in the wrong module)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
        for p in sig.parameters.values()
    ]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


def _with_request(sig: inspect.Signature) -> inspect.Signature:
    request = inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    return sig.replace(parameters=[request, *sig.parameters.values()])


def _html_endpoint(spec: PageSpec, templates: Jinja2Templates) -> Callable[..., Any]:
    def endpoint(request: Request, **kwargs: Any) -> Any:
        doc = spec.handler(**kwargs)
        context = {"page": doc, "api_path": links.api(route_path(request))}
        status = doc.get("status", 200)
        return templates.TemplateResponse(request, spec.template, context, status_code=status)

    endpoint.__signature__ = _with_request(_signature(spec.handler))  # type: ignore[attr-defined]
    endpoint.__name__ = spec.handler.__name__
    return endpoint


def _json_endpoint(spec: PageSpec) -> Callable[..., Any]:
    def endpoint(**kwargs: Any) -> Any:
        doc = spec.handler(**kwargs)
        return JSONResponse(doc, status_code=doc.get("status", 200))

    endpoint.__signature__ = _signature(spec.handler)  # type: ignore[attr-defined]
    endpoint.__name__ = f"api_{spec.handler.__name__}"
    return endpoint


def route_path(request: Request) -> str:
    """The request's path inside the UI, without the prefix it is mounted at, with its
    query string ('/projects/demo?page=2')."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    query = request.url.query
    return path + ("?" + query if query else "")
