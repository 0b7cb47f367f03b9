"""Storage backends and the factory that picks one from a URL."""

from __future__ import annotations

from typing import Any

from .base import ObjectInfo, Store
from .local import LocalStore
from .memory import MemoryStore


def open_store(url: str, storage_options: dict[str, Any] | None = None) -> Store:
    """A LocalStore for paths and file:// URLs, an FsspecStore for any other protocol."""
    if url.startswith("file://"):
        return LocalStore(url[len("file://") :])
    if "://" not in url:
        return LocalStore(url)
    from .fsspec_store import FsspecStore

    return FsspecStore(url, storage_options)


__all__ = ["LocalStore", "MemoryStore", "ObjectInfo", "Store", "open_store"]
