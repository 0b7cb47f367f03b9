"""cairn's read-only web UI: projects, collections, versions, files, lineage and runs.

`cairn ui` serves it; `create_app(repository)` builds the FastAPI application (for the
Airflow plugin, or any ASGI server). Needs the `ui` extra (fastapi, jinja2, uvicorn):
`pip install 'cairn[ui]'`. `cairn.ui.links` (the URL of each page) needs none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imports FastAPI: only when the UI is wanted
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'cairn.ui' has no attribute {name!r}")
