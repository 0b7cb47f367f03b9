"""Manifest entries: one path of a version (a file, a symbolic link or an empty folder)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import IntegrityError
from .names import check_link_target, check_path

FILE, LINK, DIR = "file", "link", "dir"
KINDS = (FILE, LINK, DIR)


class _NoPin(Mapping[str, Any]):
    """The pin of every entry read without one: empty, immutable, shared."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __reduce__(self) -> str:
        return "_NO_PIN"

    def __repr__(self) -> str:
        return "{}"


_NO_PIN = _NoPin()


@dataclass(frozen=True, slots=True)
class Chunk:
    """One content-defined piece of a large file, stored as its own object."""

    digest: str
    size: int


@dataclass(frozen=True, slots=True)  # slots: a get or a draft holds thousands at a time
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
            raise unknown_kind(path, kind)
        chunks = tuple(Chunk(d, int(s)) for d, s in data.get("chunks", ()))
        return cls(
            path=check_path(path),
            size=int(data["size"]),
            digest=data.get("digest"),
            chunks=chunks,
            ref=data.get("ref"),
            pin=dict(pin) if (pin := data.get("pin")) else _NO_PIN,
        )

    @staticmethod
    def objects_of_json(path: str, data: Mapping[str, Any]) -> list[str]:
        """`from_json(path, data).objects()` without making the entry (what gc asks of a
        million entries): the digests a stored entry needs, or IntegrityError."""
        kind = data.get("kind", FILE)
        if kind not in KINDS:
            raise unknown_kind(path, kind)
        if kind != FILE or data.get("ref") is not None:
            return []
        try:
            if chunks := data.get("chunks"):
                return [str(d) for d, _ in chunks]
        except (TypeError, ValueError):
            raise IntegrityError(
                f"entry {path!r} has bad chunks; the manifest is corrupt"
            ) from None
        digest = data.get("digest")
        return [digest] if isinstance(digest, str) and digest else []

    def moved(self, path: str) -> Entry:
        if self.kind == LINK:
            assert self.target is not None
            return Entry.link(path, self.target)
        return Entry(path, self.size, self.digest, self.chunks, self.ref, self.pin, self.kind)


def unknown_kind(path: str, kind: object) -> IntegrityError:
    return IntegrityError(
        f"entry {path!r} has kind {kind!r}, which this cairn does not know "
        f"(it knows {', '.join(KINDS)}); upgrade cairn to read this version"
    )
