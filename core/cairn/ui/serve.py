"""`cairn ui`: serve the UI with uvicorn, on the loopback unless told otherwise."""

from __future__ import annotations

import ipaddress
import sys

from ..foundation.errors import CairnError
from ..repository import Repository


def serve(repo: Repository, *, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted. The UI has no login of its own: on another interface,
    everyone who reaches it reads what this catalog connection may read."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise CairnError(
            f"cairn ui needs the web UI's packages ({exc.name} is missing): pip install 'cairn[ui]'"
        ) from None
    app = create_app(repo)
    where = f"http://{_display(host)}:{port}/"
    print(f"cairn UI at {where} (read-only; Ctrl-C stops it)", file=sys.stderr)
    if not _loopback(host):
        print(
            f"note: {host} is not a loopback address and the UI has no login: everyone who "
            "reaches it reads every project this catalog connection may read",
            file=sys.stderr,
        )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _display(host: str) -> str:
    return f"[{host}]" if ":" in host else host
