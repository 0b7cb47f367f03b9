"""A store in a local (or mounted) folder: atomic renames and fsync for durability."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterable, Iterator

from ..foundation.files import atomic_file, copy_into
from . import direct
from .base import ObjectInfo, Store


def _libc() -> ctypes.CDLL | None:
    """libc when it has syncfs (Linux); elsewhere None and sync() falls back to os.sync()."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "syncfs") else None


_LIBC = _libc()
# objects at least this large are written around the page cache, or behind (LocalStore.put)
_WRITE_BEHIND = 256 << 10
#: bytes of large objects a store writes through the page cache between two syncs before
#: it writes the rest around it: up to there the cache absorbs them and the sync writes
#: them back at the device's full speed (a direct write waits for the device on every
#: call: a 128 MiB log took 16% longer that way); past it the kernel would throttle the
#: writers anyway, and going around the cache saves copying every byte into it
DIRECT_AFTER = 512 << 20
_FADVISE = hasattr(os, "posix_fadvise")


class LocalStore(Store):
    concurrency = 4

    def __init__(self, root: str, *, durable: bool = True):
        self.root = os.path.abspath(os.path.expanduser(root))
        self.url = self.root
        self.durable = durable
        #: large objects past DIRECT_AFTER go to disk with O_DIRECT (storage/direct.py),
        #: until the file system refuses it once
        self.direct = durable and direct.available()
        self._dirty = False
        #: bytes of large objects written through the page cache since the last sync
        self._cached = 0
        self._lock = threading.Lock()
        os.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        if os.sep != "/":
            return {k for k in keys if os.path.exists(self._path(k))}
        # keys are '/'-separated already: no split and join per key, and access() builds
        # no stat result (an unchanged re-log asks for every loose chunk of a large file)
        root = self.root + "/"
        return {k for k in keys if os.access(root + k, os.F_OK)}

    def put(self, key: str, data: bytes | memoryview) -> None:
        large = self.durable and len(data) >= _WRITE_BEHIND
        with atomic_file(self._path(key)) as f:
            if not (large and self._put_direct(f.fileno(), data)):
                f.write(data)
                if large and _FADVISE:
                    # start writing it to disk now and let its pages go once clean: the
                    # final sync has little left to wait for, and a large log does not
                    # fill memory with dirty pages (which the kernel throttles)
                    f.flush()
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        self._dirty = True

    def _put_direct(self, fd: int, data: bytes | memoryview) -> bool:
        """Write a large object around the page cache, once DIRECT_AFTER bytes went
        through it since the last sync: no copy into it, nothing left to write back at the
        sync. False where it goes through the cache, or the file system refuses (then
        never again)."""
        if not self.direct:
            return False
        with self._lock:
            cached = self._cached < DIRECT_AFTER
            if cached:
                self._cached += len(data)
        if cached:
            return False
        if not direct.write(fd, data):
            self.direct = False
        return self.direct

    def put_durable(self, key: str, data: bytes | memoryview) -> None:
        """One fsync of the file and one of its folder, not a sync of the whole file
        system (other writers' dirty pages included), which costs seconds on a busy disk."""
        path = self._path(key)
        folder = os.path.dirname(path)
        if not self.durable or self._dirty or not os.path.isdir(folder):
            # objects put since the last sync (a manifest before its record), or a new
            # folder whose entry in its parent must be durable too: one sync covers all
            self.put(key, data)
            self.sync()
            return
        with atomic_file(path) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename
        finally:
            os.close(fd)

    def put_file(self, key: str, local_path: str) -> None:
        with atomic_file(self._path(key)) as f:
            copy_into(local_path, f)
        self._dirty = True

    def get_range(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        with open(self._path(key), "rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(max(0, end - start))

    def local_path(self, key: str) -> str:
        """The file behind `key`, for hardlink checkouts."""
        return self._path(key)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = os.stat(self._path(key))
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size, st.st_mtime)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The objects under `prefix`, in key order. An object deleted while the listing
        runs (another writer compacting the store log, gc) is left out, not an error:
        what a listing of an object store shows of a concurrent delete."""
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if os.path.isfile(base):
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(base)
                yield ObjectInfo(prefix, st.st_size, st.st_mtime)
            return
        yield from self._walk(base)

    def _walk(self, folder: str) -> Iterator[ObjectInfo]:
        """Every object below `folder` in key order: a folder's contents sort where its
        name followed by `/` would (`a.json`, `a/b`, `a0`)."""
        try:
            with os.scandir(folder) as found:
                # a link to a folder is not followed (nor listed), as os.walk does
                entries = [
                    (e.name, e.is_dir()) for e in found if not (e.is_dir() and e.is_symlink())
                ]
        except (FileNotFoundError, NotADirectoryError):
            return  # no such folder, or deleted since its parent was read
        rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
        for name, is_dir in sorted(entries, key=lambda e: e[0] + "/" if e[1] else e[0]):
            path = os.path.join(folder, name)
            if is_dir:
                yield from self._walk(path)
                continue
            if name.startswith(".tmp-"):
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # deleted since the folder was read
            yield ObjectInfo(name if rel == "." else f"{rel}/{name}", st.st_size, st.st_mtime)

    def delete(self, keys: Iterable[str]) -> None:
        for k in keys:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(k))

    def sync(self) -> None:
        """Flush every object written so far to disk in one call.

        One syncfs(2) of the store's filesystem costs far less than an fsync per object
        (10,000 small files) and is what makes a later commit durable.
        """
        if not self.durable or not self._dirty:
            return
        self._dirty = False
        with self._lock:
            self._cached = 0
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _LIBC is None or _LIBC.syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)
