"""Local (or mounted) files as references: pinned by size and mtime, and by BLAKE3 digest.

A file whose mtime moved is re-hashed before it is called changed: touching a file, or
copying it with its content intact, is not a change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

import blake3

from ...foundation.errors import NotFound
from ...foundation.manifest import Entry
from .base import Source, SourceObject, changed_error


class LocalSource(Source):
    protocols = ("file", "local")

    def objects(self, uri: str, *, limit: int | None, checksum: bool) -> list[SourceObject]:
        root = local_path(uri)
        if os.path.isfile(root):
            return [_object(root, checksum)]
        if not os.path.isdir(root):
            raise NotFound(f"nothing to reference at {uri}: no such file or folder")
        out: list[SourceObject] = []
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    out.append(_object(path, checksum))
                    if limit is not None and len(out) > limit:
                        return out
        if not out:
            raise NotFound(f"nothing to reference at {uri}: the folder holds no files")
        return sorted(out, key=lambda o: o.uri)

    def current(self, entry: Entry) -> SourceObject | None:
        path = local_path(entry.ref or "")
        try:
            return _object(path, checksum=False)
        except FileNotFoundError:
            return None

    def changed(self, entry: Entry, now: SourceObject) -> str | None:
        if now.size != entry.size:
            return f"size was {entry.size}, is now {now.size}"
        if now.pin.get("mtime_ns") == entry.pin.get("mtime_ns") or entry.digest is None:
            return None
        if _hash(local_path(entry.ref or "")) != entry.digest:
            return "its content no longer has the logged BLAKE3 digest"
        return None

    def stream(self, entry: Entry) -> Iterator[bytes]:
        with _open(entry) as f:
            while data := f.read(1 << 20):
                yield data

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        with _open(entry) as f:
            f.seek(start)
            return f.read(max(0, end - start))


def _open(entry: Entry) -> BinaryIO:
    try:
        return open(local_path(entry.ref or ""), "rb")
    except FileNotFoundError:
        raise changed_error(entry, "it no longer exists") from None


def local_path(uri: str) -> str:
    """The absolute path a file:// URI (or a plain path) names."""
    for scheme in ("file://", "local://"):
        if uri.startswith(scheme):
            uri = uri[len(scheme) :]
            break
    return os.path.abspath(os.path.expanduser(uri))


def _object(path: str, checksum: bool) -> SourceObject:
    st = os.stat(path)
    return SourceObject(
        f"file://{path}",
        st.st_size,
        {"mtime_ns": st.st_mtime_ns},
        _hash(path) if checksum else None,
    )


def _hash(path: str) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb") as f:
        while data := f.read(4 << 20):
            h.update(data)
    return h.hexdigest()
