"""Reference entries: files logged where they are (s3://, gs://, file://, https://).

A reference entry records the object's URI, its size and what pins its content at its
source (docs/FORMAT.md): ETag and version id on S3, generation and md5/crc32c on GCS,
size, mtime and BLAKE3 digest for local files, ETag/Last-Modified over HTTP. Its bytes
are never copied into the store (gc has nothing to keep for it). Reading one fetches
from the source, the pinned version where the source keeps versions, and fails with
ReferenceChanged when the source no longer holds the pinned content. A reference logged
with checksum=False records the URI alone and is read as it is.

Storage options (credentials, endpoints) come from the caller, else from the store's
own options when the scheme is the store's, else from fsspec's configuration and the
environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST, ...).
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import blake3

from ...foundation.errors import CairnError, InvalidName
from ...foundation.manifest import Entry
from ...foundation.names import check_path, join_path
from ..reader import SeekableReader
from .base import BLOCK, Source, SourceObject, changed_error, protocol_of, retrying, validated
from .local import local_path
from .sources import Sources

__all__ = [
    "Source",
    "SourceObject",
    "Sources",
    "check",
    "check_all",
    "entries",
    "fetch",
    "open_reference",
]


def entries(
    uri: str,
    name: str | None = None,
    *,
    checksum: bool = True,
    max_objects: int | None = None,
    storage_options: dict[str, Any] | None = None,
    sources: Sources | None = None,
) -> list[Entry]:
    """Entries for the object at `uri`, or one per object under it as a prefix.

    A single object is named `name` (default: its file name); the objects of a prefix
    keep their paths below it, under the folder `name` (default: the artifact root).
    More than `max_objects` objects is an error, raised before anything is recorded.
    """
    if max_objects is not None and max_objects < 1:
        raise CairnError("max_objects must be at least 1 (or None for no limit)")
    if sources is None:
        sources = Sources({protocol_of(uri): storage_options or {}})
    source = sources.for_uri(uri)
    found = retrying(lambda: source.objects(uri, limit=max_objects, checksum=checksum))
    if max_objects is not None and len(found) > max_objects:
        raise CairnError(
            f"{uri} holds more than max_objects={max_objects} objects; nothing was added. "
            "Reference a narrower prefix or pass a larger max_objects (None: no limit)"
        )
    base = canonical(uri)
    if len(found) == 1 and found[0].uri == base:
        return [_entry(found[0], check_path(name) if name else _basename(base), checksum)]
    prefix = base.rstrip("/") + "/"
    out = []
    for obj in found:
        try:
            path = join_path(name, obj.uri[len(prefix) :])
        except InvalidName as exc:
            raise InvalidName(f"cannot reference {obj.uri}: {exc}") from None
        out.append(_entry(obj, path, checksum))
    return out


def fetch(
    entry: Entry,
    out: IO[bytes],
    *,
    sources: Sources | None = None,
    progress: Callable[[int], None] | None = None,
) -> str:
    """Write the entry's content to `out` from its source; return its BLAKE3 digest.

    Raises ReferenceChanged when the source no longer holds the pinned content. A
    transient failure part-way starts the fetch again from the beginning.
    """
    source = (sources or Sources()).for_uri(entry.ref or "")
    start = out.tell()

    def attempt() -> tuple[str, int]:
        out.seek(start)
        out.truncate()
        h = blake3.blake3()
        size = 0
        for data in source.stream(entry):
            out.write(data)
            h.update(data)
            size += len(data)
            if progress:
                progress(len(data))
        return h.hexdigest(), size

    digest, size = retrying(attempt)
    if validated(entry) and size != entry.size:
        raise changed_error(entry, f"size was {entry.size}, is now {size}")
    if entry.digest and digest != entry.digest:
        raise changed_error(entry, "its content no longer has the logged BLAKE3 digest")
    return digest


def open_reference(entry: Entry, *, sources: Sources | None = None) -> io.BufferedReader:
    """A seekable binary stream over the entry's content, read in ranges from its source."""
    source = (sources or Sources()).for_uri(entry.ref or "")
    return io.BufferedReader(_ReferenceReader(entry, source), buffer_size=1 << 20)


def check(entry: Entry, *, sources: Sources | None = None) -> str | None:
    """None when a reference still resolves to what it pinned; else what is wrong.

    Stats the source (one request): no bytes are read except for a local file whose
    mtime moved. A reference logged with checksum=False is only checked to exist.
    Content entries are not references: None.
    """
    if not entry.is_reference:
        return None
    source = (sources or Sources()).for_uri(entry.ref or "")
    try:
        now = retrying(lambda: source.current(entry))
    except Exception as exc:
        return f"{entry.path}: {entry.ref} cannot be checked: {exc}"
    if now is None:
        pinned = " (its pinned version)" if _pins_version(entry) else ""
        return f"{entry.path}: {entry.ref}{pinned} no longer exists"
    if not validated(entry):
        return None
    try:
        why = retrying(lambda: source.changed(entry, now))
    except Exception as exc:
        return f"{entry.path}: {entry.ref} cannot be checked: {exc}"
    return f"{entry.path}: {entry.ref} changed since it was logged: {why}" if why else None


def check_all(
    entries: Iterable[Entry], *, sources: Sources | None = None, concurrency: int = 16
) -> dict[str, str]:
    """check() of many entries in parallel: logical path -> problem, for those with one."""
    refs = [e for e in entries if e.is_reference]
    sources = sources or Sources()
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        problems = pool.map(lambda e: check(e, sources=sources), refs)
        return {e.path: p for e, p in zip(refs, problems, strict=True) if p}


def canonical(uri: str) -> str:
    """The URI as entries record it: file:// + absolute path, gs:// for gcs://, s3://."""
    if "://" not in uri or uri.startswith(("file://", "local://")):
        return f"file://{local_path(uri)}"
    scheme, rest = uri.split("://", 1)
    scheme = {"gcs": "gs", "s3a": "s3"}.get(scheme.lower(), scheme.lower())
    return f"{scheme}://{rest}"


def _entry(obj: SourceObject, path: str, checksum: bool) -> Entry:
    if not checksum:
        return Entry(path, obj.size, None, ref=obj.uri)
    return Entry(path, obj.size, obj.digest, ref=obj.uri, pin=dict(obj.pin))


def _basename(uri: str) -> str:
    name = posixpath.basename(uri.split("://", 1)[-1].split("?", 1)[0].rstrip("/"))
    if not name:
        raise CairnError(f"cannot name a reference to {uri}; pass name=")
    return check_path(name)


def _pins_version(entry: Entry) -> bool:
    return bool(entry.pin.get("version_id") or entry.pin.get("generation"))


class _ReferenceReader(SeekableReader):
    """Ranged reads of a reference; the source is checked against the pin on first use."""

    def __init__(self, entry: Entry, source: Source):
        super().__init__()
        self.entry = entry
        self.source = source
        self._size: int | None = None

    def size(self) -> int:
        if self._size is None:
            now = retrying(lambda: self.source.current(self.entry))
            if now is None:
                raise changed_error(self.entry, "it no longer exists")
            if validated(self.entry):
                why = self.source.changed(self.entry, now)
                if why:
                    raise changed_error(self.entry, why)
                self._size = self.entry.size
            else:
                self._size = now.size
        return self._size

    def readinto(self, buffer: Any) -> int:
        size = self.size()
        end = min(size, self._pos + min(len(buffer), BLOCK))
        if self._pos >= end:
            return 0
        data = retrying(lambda: self.source.read(self.entry, self._pos, end))
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def readall(self) -> bytes:
        parts = []
        while data := self.read(BLOCK):
            parts.append(data)
        return b"".join(parts)
