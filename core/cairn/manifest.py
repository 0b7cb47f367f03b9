"""Manifests: the immutable map of logical path -> entry that a version is.

A manifest serialises canonically (sorted paths, sorted keys, compact separators), so
its BLAKE3 digest identifies the content of a version: two logs of identical content
have the same digest (DESIGN invariant 4).

Entries are files, symbolic links (a target inside the version) or empty folders. A
manifest of files alone is written as format 1, byte for byte what cairn wrote before
links existed (so old versions keep their digests); one with a link or a folder is
format 2, which older readers refuse instead of misreading (docs/FORMAT.md).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import blake3

from .errors import IntegrityError
from .names import check_link_target, check_path

#: manifest formats: 1 holds files only; 2 adds link and folder entries
FORMAT_FILES = 1
FORMAT_VERSION = 2
FILE, LINK, DIR = "file", "link", "dir"
KINDS = (FILE, LINK, DIR)
_MAX_HOPS = 40  # links followed while resolving one path, as Linux's ELOOP limit


@dataclass(frozen=True)
class Chunk:
    """One content-defined piece of a large file, stored as its own object."""

    digest: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One path of a version: a file, a symbolic link, or an empty folder (`kind`).

    A file's content is either a single object keyed by `digest` (no `chunks`) or the
    ordered `chunks`. A reference entry has `ref` (a URI) and `pin` (what identifies
    the bytes there: etag, version id, generation, mtime...) and no stored objects.
    A link has its `target`, relative to the link's folder and inside the version
    (names.check_link_target); a folder entry stands for an empty folder. Neither has
    bytes: size 0, no digest.
    """

    path: str
    size: int
    digest: str | None
    chunks: tuple[Chunk, ...] = ()
    ref: str | None = None
    pin: Mapping[str, Any] = field(default_factory=dict)
    kind: str = FILE
    target: str | None = None

    @classmethod
    def link(cls, path: str, target: str) -> Entry:
        """A symbolic link at `path` to `target` (refused if it would leave the version)."""
        path = check_path(path)
        return cls(path, 0, None, kind=LINK, target=check_link_target(path, target))

    @classmethod
    def folder(cls, path: str) -> Entry:
        """An empty folder at `path`."""
        return cls(check_path(path), 0, None, kind=DIR)

    @property
    def is_reference(self) -> bool:
        return self.ref is not None

    @property
    def is_file(self) -> bool:
        return self.kind == FILE

    def objects(self) -> list[str]:
        """Digests of the store objects this entry needs."""
        if self.ref is not None or self.kind != FILE:
            return []
        if self.chunks:
            return [c.digest for c in self.chunks]
        return [self.digest] if self.digest else []

    def same_content(self, other: Entry) -> bool:
        """Whether both stand for the same bytes (or the same link, or both are folders).

        A reference without a digest is known only by its pin (ETag, generation, mtime...),
        so there the pin decides too.
        """
        if (self.kind, self.target) != (other.kind, other.target):
            return False
        if (self.digest, self.size, self.ref) != (other.digest, other.size, other.ref):
            return False
        return self.digest is not None or dict(self.pin) == dict(other.pin)

    def to_json(self) -> dict[str, Any]:
        if self.kind == LINK:
            return {"kind": LINK, "target": self.target}
        if self.kind == DIR:
            return {"kind": DIR}
        out: dict[str, Any] = {"size": self.size, "digest": self.digest}
        if self.chunks:
            out["chunks"] = [[c.digest, c.size] for c in self.chunks]
        if self.ref is not None:
            out["ref"] = self.ref
            out["pin"] = dict(self.pin)
        return out

    @classmethod
    def from_json(cls, path: str, data: Mapping[str, Any]) -> Entry:
        kind = data.get("kind", FILE)
        if kind == LINK:
            target = data.get("target")
            if not isinstance(target, str):
                raise IntegrityError(f"link entry {path!r} has no target; the manifest is corrupt")
            return cls.link(path, target)
        if kind == DIR:
            return cls.folder(path)
        if kind != FILE:
            raise _unknown_kind(path, kind)
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
        if self.kind == LINK:
            assert self.target is not None
            return Entry.link(path, self.target)
        return Entry(path, self.size, self.digest, self.chunks, self.ref, self.pin, self.kind)


def _unknown_kind(path: str, kind: object) -> IntegrityError:
    return IntegrityError(
        f"entry {path!r} has kind {kind!r}, which this cairn does not know "
        f"(it knows {', '.join(KINDS)}); upgrade cairn to read this version"
    )


class Manifest(Mapping[str, Entry]):
    """An immutable, canonically ordered mapping of path -> Entry."""

    __slots__ = ("_entries", "_digest", "_body")

    def __init__(self, entries: Iterable[Entry] = ()):
        by_path: dict[str, Entry] = {}
        for e in entries:
            by_path[e.path] = e
        self._entries = _checked(by_path)
        self._digest: str | None = None
        self._body: bytes | None = None

    def __getitem__(self, path: str) -> Entry:
        return self._entries[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return sum(e.size for e in self._entries.values())

    @property
    def file_count(self) -> int:
        """Files and links (what a reader can open); empty folders are not counted."""
        return sum(1 for e in self._entries.values() if e.kind != DIR)

    def resolve(self, path: str) -> str:
        """`path` ('' for the root) with every link in it followed, within the version.

        Links resolve as on a disk: relative to their folder, `..` going up from where
        the walk is. The result need not exist (a dangling link); a loop, or a walk that
        would leave the version, is an IntegrityError.
        """
        todo = [p for p in reversed(path.split("/")) if p]
        done: list[str] = []
        hops = 0
        while todo:
            name = todo.pop()
            if name == "..":
                if not done:
                    raise IntegrityError(f"{path!r} leads outside the version")
                done.pop()
                continue
            here = "/".join([*done, name])
            e = self._entries.get(here)
            if e is not None and e.kind == LINK and e.target is not None:
                hops += 1
                if hops > _MAX_HOPS:
                    raise IntegrityError(f"{path!r}: too many links (a loop?)")
                todo.extend(reversed(e.target.split("/")))
                continue
            done.append(name)
        return "/".join(done)

    def objects(self) -> set[str]:
        """Every store object digest this manifest needs."""
        return {d for e in self._entries.values() for d in e.objects()}

    def to_bytes(self) -> bytes:
        """Canonical JSON: the bytes the digest is taken over."""
        if self._body is None:
            plain = all(e.kind == FILE for e in self._entries.values())
            doc = {
                "format": FORMAT_FILES if plain else FORMAT_VERSION,
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
    """A manifest's JSON document (`{"entries": {path: entry}, "format": 1 or 2}`), its
    digest and format checked, without building an `Entry` per path (see cairn.tree)."""
    return read_document(verified_json(body, expect_digest=expect_digest))


def verified_json(body: bytes, *, expect_digest: str | None = None) -> bytes:
    """A stored manifest (compressed or not) as its canonical JSON, checked against its
    digest: the bytes the digest was taken over."""
    if body[:1] != b"{":
        try:
            body = zlib.decompress(body)
        except zlib.error as exc:  # truncated or overwritten: no manifest to check
            raise IntegrityError(f"manifest {expect_digest} is corrupt: {exc}") from None
    if expect_digest and blake3.blake3(body).hexdigest() != expect_digest:
        raise IntegrityError(f"manifest {expect_digest} is corrupt: its digest does not match")
    return body


def read_document(text: bytes) -> dict[str, Any]:
    """The parsed JSON of a manifest, its format checked."""
    try:
        doc: dict[str, Any] = json.loads(text)
    except ValueError as exc:  # only without a digest to check first
        raise IntegrityError(f"manifest is corrupt: it is not JSON ({exc})") from None
    form = doc.get("format") if isinstance(doc, dict) else None
    if form not in (FORMAT_FILES, FORMAT_VERSION):
        raise IntegrityError(
            f"manifest format {form!r} is not supported by this cairn "
            f"(knows {FORMAT_FILES} and {FORMAT_VERSION}); upgrade cairn"
        )
    if form == FORMAT_FILES:
        for p, e in doc["entries"].items():
            if "kind" in e:
                raise IntegrityError(
                    f"manifest format 1 has a {e['kind']!r} entry at {p!r}: only format 2 "
                    "holds links and folders; the manifest is corrupt"
                )
    return doc


def _checked(by_path: dict[str, Entry]) -> dict[str, Entry]:
    """The entries in path order, checked: known kinds, link targets inside the version,
    no path both a leaf and a folder of another (an empty-folder entry that has something
    in it is dropped: the folder exists anyway)."""
    folders: set[str] = set()
    for p in by_path:
        head = p
        while "/" in head:
            head = head.rsplit("/", 1)[0]
            if head in folders:
                break
            folders.add(head)
    out: dict[str, Entry] = {}
    for p, e in sorted(by_path.items()):
        if e.kind != FILE:
            if e.kind == LINK:
                check_link_target(p, e.target or "")
            elif e.kind != DIR:
                raise _unknown_kind(p, e.kind)
        if p in folders:
            if e.kind == DIR:
                continue
            child = next(q for q in by_path if q.startswith(p + "/"))
            raise IntegrityError(f"path {p!r} is both a file and a folder of {child!r}; rename one")
        out[p] = e
    return out


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
