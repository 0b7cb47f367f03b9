"""A store on any fsspec filesystem (s3://, gs://, memory://, ...).

Every request runs as a coroutine on the filesystem's event loop: natively for async
filesystems (s3fs, gcsfs), in a worker thread for the others. Batched calls gather their
requests with at most `concurrency` in flight for the whole store, so 10,000 small
objects cost 10,000 overlapping requests, not 10,000 sequential round trips.

Existence checks decide what gets uploaded, so they never trust fsspec's listings cache
(a stale "exists" could skip an object GC has just deleted): the store turns it off.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import fsspec
from fsspec.asyn import AsyncFileSystem, get_loop, sync

from .base import Batch, ObjectInfo, Store

T = TypeVar("T")

#: sub-folders a listing reads at once, ahead of the walk (a store's 256 `objects/xx`
#: folders are listed in 16 rounds, not 256), as long as about this many entries are held
_LOOKAHEAD = 16
_LOOKAHEAD_ENTRIES = 20_000


class FsspecStore(Store):
    """The generic fsspec backend; S3Store and GCSStore specialise a few primitives."""

    #: URL schemes `open_store` picks this class for (empty: the fallback for any scheme)
    protocols: ClassVar[tuple[str, ...]] = ()
    concurrency = 32
    #: existence of at most this many keys is asked one request per key ...
    head_limit = 16
    #: ... else a folder holding at least this many of them is listed instead
    list_min = 4

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        *,
        concurrency: int | None = None,
    ):
        self.url = url.rstrip("/")
        if concurrency:
            self.concurrency = concurrency
        options = self.filesystem_options(dict(storage_options or {}))
        fs, root = fsspec.core.url_to_fs(self.url, **options)
        self.fs = fs
        self.root = root.rstrip("/")
        self._async = isinstance(fs, AsyncFileSystem) and fs.async_impl
        self._loop = fs.loop if self._async else get_loop()
        self._limit: asyncio.Semaphore | None = None

    def filesystem_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The storage options the filesystem is built with (subclasses add defaults)."""
        options.setdefault("use_listings_cache", False)
        return options

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # -- the Store interface ---------------------------------------------------------------

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        keys = list(dict.fromkeys(keys))
        return self._run(self._exists_many(keys)) if keys else set()

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._run(self._limited(self._write(self._path(key), _bytes(data))))

    def put_many(self, items: Mapping[str, bytes | memoryview]) -> Batch[None]:
        return self._batch(list(items), lambda k: self._write(self._path(k), _bytes(items[k])))

    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self._run(self._limited(self._read(self._path(key), start, end)))

    def get_many(self, keys: Iterable[str]) -> Batch[bytes]:
        return self._batch(list(keys), lambda k: self._read(self._path(k), 0, None))

    def stat(self, key: str) -> ObjectInfo | None:
        info = self._run(self._limited(self._head(self._path(key))))
        return None if info is None else ObjectInfo(key, int(info.get("size") or 0), _mtime(info))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """A folder at a time, in key order: a store of a million objects is listed in
        pages of one folder (`objects/xx/`: a 256th of them), never held whole."""
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        strip = len(self.root) + 1 if self.root else 0
        listed = False
        for path, info in self._walk(base):
            listed = True
            key = path[strip:]
            if key.startswith(prefix):
                yield ObjectInfo(key, int(info.get("size") or 0), _mtime(info))
        if not listed and prefix and not prefix.endswith("/"):
            head = self._run(self._limited(self._head(base)))  # the prefix may be a key
            if head is not None and head.get("type") != "directory":
                yield ObjectInfo(prefix, int(head.get("size") or 0), _mtime(head))

    def _walk(
        self, folder: str, listing: builtins.list[dict[str, Any]] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(path, info) of every object below `folder`, in path order: a folder's
        contents sort where its name followed by `/` would (`a.json`, `a/b`, `a0`).
        Sub-folders are listed a few at once, ahead of the walk: as many as keep about
        `_LOOKAHEAD_ENTRIES` entries in memory, judged by the last one listed."""
        if listing is None:
            listing = self._run(self._limited(self._listdir(folder)))
        entries = []
        for e in listing:
            path = e["name"].rstrip("/")
            if path == folder:
                continue  # a folder marker object, or the folder itself
            is_folder = e.get("type") == "directory"
            entries.append((path + "/" if is_folder else path, is_folder, path, e))
        entries.sort(key=lambda x: x[0])
        folders = [path for _, is_folder, path, _ in entries if is_folder]
        ahead: dict[str, builtins.list[dict[str, Any]]] = {}
        listed, last = 0, 1  # sub-folders listed so far; entries of the last one
        for _, is_folder, path, e in entries:
            if not is_folder:
                yield path, e
                continue
            if path not in ahead:
                window = folders[
                    listed : listed + max(1, min(_LOOKAHEAD, _LOOKAHEAD_ENTRIES // last))
                ]
                listed += len(window)
                got = self._run(self._listdirs(window))
                ahead.update(zip(window, got, strict=True))
                last = max(1, len(got[-1]))
            yield from self._walk(path, ahead.pop(path))

    def delete(self, keys: Iterable[str]) -> None:
        paths = [self._path(k) for k in keys]
        if paths:
            self._run(self._remove(paths))

    # -- primitives a backend may specialise (coroutines on the filesystem's loop) ---------

    async def _head(self, path: str) -> dict[str, Any] | None:
        """Metadata of the object at `path` (at least `size`), or None if there is none."""
        try:
            info = await self._call("info", path)
        except FileNotFoundError:
            return None
        return info if info.get("type", "file") == "file" else None

    async def _read(self, path: str, start: int, end: int | None) -> bytes:
        if start == 0 and end is None:
            data: bytes = await self._call("cat_file", path)
        else:
            data = await self._call("cat_file", path, start=start, end=end)
        return data

    async def _write(self, path: str, data: bytes) -> None:
        await self._call("pipe_file", path, data)

    async def _listdir(self, path: str) -> builtins.list[dict[str, Any]]:
        """Direct children of folder `path` (files and sub-folders); [] if it has none."""
        try:
            out: builtins.list[dict[str, Any]] = await self._call("ls", path, detail=True)
        except FileNotFoundError:
            return []
        return out

    async def _listdirs(
        self, paths: builtins.list[str]
    ) -> builtins.list[builtins.list[dict[str, Any]]]:
        return await asyncio.gather(*(self._limited(self._listdir(p)) for p in paths))

    async def _remove(self, paths: builtins.list[str]) -> None:
        """Delete objects one request each; a missing one is not an error."""

        async def one(path: str) -> None:
            with contextlib.suppress(FileNotFoundError):
                await self._call("rm_file", path)

        await asyncio.gather(*(self._limited(one(p)) for p in paths))

    # -- machinery ------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def _folder(self, folder: str) -> str:
        return self._path(folder) if folder else self.root

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """fs.<method>(...) as a coroutine: `_method` on async filesystems, else a thread."""
        if self._async:
            return await getattr(self.fs, f"_{method}")(*args, **kwargs)
        return await asyncio.to_thread(getattr(self.fs, method), *args, **kwargs)

    def _run(self, coro: Awaitable[T]) -> T:
        async def run() -> T:
            return await coro

        return sync(self._loop, run)

    async def _limited(self, coro: Awaitable[T]) -> T:
        # one semaphore for the whole store, made on the loop it is used on
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.concurrency)
        async with self._limit:
            return await coro

    def _batch(self, keys: builtins.list[str], one: Callable[[str], Awaitable[T]]) -> Batch[T]:
        async def run() -> builtins.list[Any]:
            return await asyncio.gather(
                *(self._limited(one(k)) for k in keys), return_exceptions=True
            )

        out: Batch[T] = Batch()
        for key, result in zip(keys, sync(self._loop, run), strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # KeyboardInterrupt, cancellation: not a per-key failure
                out.failed[key] = result
            else:
                out.ok[key] = result
        return out

    async def _exists_many(self, keys: builtins.list[str]) -> set[str]:
        if len(keys) <= self.head_limit:
            return await self._exists_by_head(keys)
        folders: dict[str, list[str]] = defaultdict(list)
        for k in keys:
            folders[_parent(k)].append(k)
        present = await self._present_folders(list(folders))
        checks = []
        for folder, wanted in folders.items():
            if folder not in present:
                continue  # no folder, none of its keys
            if len(wanted) >= self.list_min:
                checks.append(self._exists_by_listing(folder, wanted))
            else:
                checks.append(self._exists_by_head(wanted))
        found: set[str] = set()
        for part in await asyncio.gather(*checks):
            found |= part
        return found

    async def _exists_by_head(self, keys: builtins.list[str]) -> set[str]:
        heads = await asyncio.gather(*(self._limited(self._head(self._path(k))) for k in keys))
        return {k for k, info in zip(keys, heads, strict=True) if info is not None}

    async def _exists_by_listing(self, folder: str, keys: builtins.list[str]) -> set[str]:
        listing = await self._limited(self._listdir(self._folder(folder)))
        names = {e["name"].rstrip("/") for e in listing if e.get("type") != "directory"}
        return {k for k in keys if self._path(k) in names}

    async def _present_folders(self, folders: builtins.list[str]) -> set[str]:
        """Which of `folders` exist, from one listing of each of their parents.

        One request answers for up to 256 `objects/xx` folders; in a new or small store
        most are absent and need no request of their own.
        """
        by_parent: dict[str, list[str]] = defaultdict(list)
        present: set[str] = set()
        for f in folders:
            if f:
                by_parent[_parent(f)].append(f)
            else:
                present.add(f)  # the root: always there
        parents = list(by_parent)
        listings = await asyncio.gather(
            *(self._limited(self._listdir(self._folder(p))) for p in parents)
        )
        for parent, listing in zip(parents, listings, strict=True):
            names = {e["name"].rstrip("/") for e in listing if e.get("type") == "directory"}
            present.update(f for f in by_parent[parent] if self._path(f) in names)
        return present


def _parent(key: str) -> str:
    return key.rsplit("/", 1)[0] if "/" in key else ""


def _bytes(data: bytes | memoryview) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


def _mtime(info: Mapping[str, Any]) -> float | None:
    for name in ("mtime", "created", "LastModified", "updated"):
        value = info.get(name)
        if value is None or value == "":
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        if isinstance(value, str):
            from datetime import datetime

            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            continue
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None
