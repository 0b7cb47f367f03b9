"""A store on any fsspec filesystem (s3://, gs://, memory://, ...).

Async filesystems (s3fs, gcsfs) get their batched calls gathered on fsspec's event loop;
others run in a small thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec
from fsspec.asyn import AsyncFileSystem, sync

from .base import ObjectInfo, Store


class FsspecStore(Store):
    concurrency = 16

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = url.rstrip("/")
        fs, root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.fs = fs
        self.root = root.rstrip("/")
        self._async = isinstance(fs, AsyncFileSystem) and fs.async_impl

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def _gather(self, coros: list) -> list:
        async def run() -> list:
            sem = asyncio.Semaphore(self.concurrency * 4)

            async def one(c):  # type: ignore[no-untyped-def]
                async with sem:
                    return await c

            return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)

        return sync(self.fs.loop, run)

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()
        if self._async:
            found = self._gather([self.fs._exists(self._path(k)) for k in keys])
        else:
            with ThreadPoolExecutor(self.concurrency) as pool:
                found = list(pool.map(lambda k: self.fs.exists(self._path(k)), keys))
        return {k for k, ok in zip(keys, found, strict=True) if ok is True}

    def put(self, key: str, data: bytes | memoryview) -> None:
        self.fs.pipe_file(self._path(key), bytes(data))

    def put_file(self, key: str, local_path: str) -> None:
        self.fs.put_file(local_path, self._path(key))

    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self.fs.cat_file(self._path(key), start=start, end=end)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        return ObjectInfo(key, int(info.get("size") or 0), _mtime(info))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        strip = len(self.root) + 1 if self.root else 0
        for path, info in sorted(found.items()):
            if info.get("type") == "directory":
                continue
            yield ObjectInfo(path[strip:], int(info.get("size") or 0), _mtime(info))

    def delete(self, keys: Iterable[str]) -> None:
        paths = [self._path(k) for k in keys]
        if paths:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(paths)


def _mtime(info: dict[str, Any]) -> float | None:
    for field in ("mtime", "created", "LastModified", "updated"):
        value = info.get(field)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None
