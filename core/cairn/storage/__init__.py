"""Storage backends and the factory that picks one from a URL.

A backend is a class: `LocalStore` for paths and file:// URLs, a `FsspecStore` subclass
claiming URL schemes through its `protocols` attribute (S3Store, GCSStore), and the plain
FsspecStore for any other fsspec protocol. Remote stores are wrapped in a RetryingStore.
"""

from __future__ import annotations

from typing import Any

from .base import Batch, ObjectInfo, Store
from .fsspec_store import FsspecStore
from .local import LocalStore
from .memory import MemoryStore
from .retry import RetryingStore, is_transient


def _backends() -> dict[str, type[FsspecStore]]:
    from .gcs import GCSStore
    from .s3 import S3Store

    return {p: cls for cls in (S3Store, GCSStore) for p in cls.protocols}


def open_store(
    url: str,
    storage_options: dict[str, Any] | None = None,
    *,
    concurrency: int | None = None,
    retry: bool = True,
) -> Store:
    """The store behind `url`: a local folder, or any fsspec URL (s3://, gs://, ...).

    `storage_options` go to the fsspec filesystem (credentials, endpoint); `concurrency`
    bounds the requests in flight; remote stores retry transient errors unless `retry`
    is False.
    """
    if url.startswith("file://") or "://" not in url:
        local = LocalStore(url[len("file://") :] if url.startswith("file://") else url)
        if concurrency:
            local.concurrency = concurrency
        return local
    protocol = url.split("://", 1)[0].lower()
    backend = _backends().get(protocol, FsspecStore)
    store: Store = backend(url, storage_options, concurrency=concurrency)
    return RetryingStore(store) if retry else store


__all__ = [
    "Batch",
    "FsspecStore",
    "LocalStore",
    "MemoryStore",
    "ObjectInfo",
    "RetryingStore",
    "Store",
    "is_transient",
    "open_store",
]
