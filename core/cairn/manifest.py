"""Manifests: the immutable map of logical path -> entry that a version is.

A manifest serialises canonically (sorted paths, sorted keys, compact separators), so
its BLAKE3 digest identifies the content of a version: two logs of identical content
have the same digest (DESIGN invariant 4).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import blake3

from .errors import IntegrityError
from .names import check_path

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Chunk:
    """One content-defined piece of a large file, stored as its own object."""

    digest: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One file of a version.

    Stored content is either a single object keyed by `digest` (no `chunks`) or the
    ordered `chunks`. A reference entry has `ref` (a URI) and `pin` (what identifies
    the bytes there: etag, version id, generation, mtime...) and no stored objects.
    """

    path: str
    size: int
    digest: str | None
    chunks: tuple[Chunk, ...] = ()
    ref: str | None = None
    pin: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_reference(self) -> bool:
        return self.ref is not None

    def objects(self) -> list[str]:
        """Digests of the store objects this entry needs."""
        if self.ref is not None:
            return []
        if self.chunks:
            return [c.digest for c in self.chunks]
        return [self.digest] if self.digest else []

    def same_content(self, other: Entry) -> bool:
        """Whether both stand for the same bytes.

        A reference without a digest is known only by its pin (ETag, generation, mtime...),
        so there the pin decides too.
        """
        if (self.digest, self.size, self.ref) != (other.digest, other.size, other.ref):
            return False
        return self.digest is not None or dict(self.pin) == dict(other.pin)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": self.size, "digest": self.digest}
        if self.chunks:
            out["chunks"] = [[c.digest, c.size] for c in self.chunks]
        if self.ref is not None:
            out["ref"] = self.ref
            out["pin"] = dict(self.pin)
        return out

    @classmethod
    def from_json(cls, path: str, data: Mapping[str, Any]) -> Entry:
        chunks = tuple(Chunk(d, int(s)) for d, s in data.get("chunks", ()))
        return cls(
            path=check_path(path),
            size=int(data["size"]),
            digest=data.get("digest"),
            chunks=chunks,
            ref=data.get("ref"),
            pin=dict(data.get("pin") or {}),
        )

    def moved(self, path: str) -> Entry:
        return Entry(path, self.size, self.digest, self.chunks, self.ref, self.pin)


class Manifest(Mapping[str, Entry]):
    """An immutable, canonically ordered mapping of path -> Entry."""

    __slots__ = ("_entries", "_digest", "_body")

    def __init__(self, entries: Iterable[Entry] = ()):
        by_path: dict[str, Entry] = {}
        for e in entries:
            by_path[e.path] = e
        self._entries = dict(sorted(by_path.items()))
        self._check_no_file_dir_clash()
        self._digest: str | None = None
        self._body: bytes | None = None

    def _check_no_file_dir_clash(self) -> None:
        paths = self._entries
        for p in paths:
            head = p
            while "/" in head:
                head = head.rsplit("/", 1)[0]
                if head in paths:
                    raise IntegrityError(
                        f"path {head!r} is both a file and a folder of {p!r}; rename one"
                    )

    def __getitem__(self, path: str) -> Entry:
        return self._entries[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return sum(e.size for e in self._entries.values())

    def objects(self) -> set[str]:
        """Every store object digest this manifest needs."""
        return {d for e in self._entries.values() for d in e.objects()}

    def to_bytes(self) -> bytes:
        """Canonical JSON: the bytes the digest is taken over."""
        if self._body is None:
            doc = {
                "format": FORMAT_VERSION,
                "entries": {p: e.to_json() for p, e in self._entries.items()},
            }
            self._body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return self._body

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = blake3.blake3(self.to_bytes()).hexdigest()
        return self._digest

    def compressed(self) -> bytes:
        return zlib.compress(self.to_bytes(), 6)

    @classmethod
    def from_bytes(cls, body: bytes, *, expect_digest: str | None = None) -> Manifest:
        doc = parse_document(body, expect_digest=expect_digest)
        return cls(Entry.from_json(p, e) for p, e in doc["entries"].items())


def parse_document(body: bytes, *, expect_digest: str | None = None) -> dict[str, Any]:
    """A manifest's JSON document (`{"entries": {path: entry}, "format": 1}`), its digest
    and format checked, without building an `Entry` per path (see cairn.tree)."""
    return read_document(verified_json(body, expect_digest=expect_digest))


def verified_json(body: bytes, *, expect_digest: str | None = None) -> bytes:
    """A stored manifest (compressed or not) as its canonical JSON, checked against its
    digest: the bytes the digest was taken over."""
    if body[:1] != b"{":
        body = zlib.decompress(body)
    if expect_digest and blake3.blake3(body).hexdigest() != expect_digest:
        raise IntegrityError(f"manifest {expect_digest} is corrupt: its digest does not match")
    return body


def read_document(text: bytes) -> dict[str, Any]:
    """The parsed JSON of a manifest, its format checked."""
    doc: dict[str, Any] = json.loads(text)
    if doc.get("format") != FORMAT_VERSION:
        raise IntegrityError(
            f"manifest format {doc.get('format')!r} is not supported by this cairn "
            f"(knows {FORMAT_VERSION}); upgrade cairn"
        )
    return doc


@dataclass(frozen=True)
class Diff:
    """Paths added, removed and modified between two manifests."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]

    @classmethod
    def between(cls, old: Mapping[str, Entry], new: Mapping[str, Entry]) -> Diff:
        return cls(
            added=tuple(sorted(set(new) - set(old))),
            removed=tuple(sorted(set(old) - set(new))),
            modified=tuple(
                sorted(p for p in set(old) & set(new) if not old[p].same_content(new[p]))
            ),
        )

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)
