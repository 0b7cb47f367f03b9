"""The marker at the top of a checkout: what cairn wrote there, so a later get can tell
its own unmodified files from local edits and from files it did not make.

`.cairn-checkout.json` records the version checked out (ref, collection, manifest
digest) and, per path, what cairn put there: a file's digest, size and the stamp it had
when written (mtime, inode), a link's target, or a folder. A get in progress records
what it is about to write as `incoming`, so an interrupted get's own files are known
to the re-run (docs/FORMAT.md, "Checkouts").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MARKER = ".cairn-checkout.json"
MARKER_FORMAT = 1
# a file written this close before the marker may have been edited within the same
# timestamp tick (ext4 stamps in jiffies, 4-10 ms): its stamp alone is not trusted
RACY_NS = 20_000_000


@dataclass(frozen=True)
class Written:
    """What cairn put at one path: kind 'file' (digest, size, stamp), 'link' or 'dir'."""

    kind: str
    digest: str | None = None
    size: int = 0
    target: str | None = None
    mtime_ns: int | None = None
    ino: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("digest", "size", "target", "mtime_ns", "ino"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Written:
        return cls(
            kind=str(data["kind"]),
            digest=data.get("digest"),
            size=int(data.get("size", 0)),
            target=data.get("target"),
            mtime_ns=data.get("mtime_ns"),
            ino=data.get("ino"),
        )


@dataclass(frozen=True)
class Marker:
    """A checkout of `ref` (a version of project/collection); `complete` once every
    path in `entries` is on disk, else `incoming` holds what the get was writing."""

    ref: str
    project: str
    collection: str
    version: str
    digest: str
    complete: bool
    entries: dict[str, Written]
    #: while a get is under way: every path it (or an interrupted get before it) may
    #: have written, with what
    incoming: dict[str, list[Written]] = field(default_factory=dict)
    #: when the marker was written (its own mtime), to spot racily clean stamps
    written_ns: int = 0

    def collection_ref(self) -> str:
        return f"{self.project}/{self.collection}"

    def to_bytes(self) -> bytes:
        doc = {
            "format": MARKER_FORMAT,
            "ref": self.ref,
            "project": self.project,
            "collection": self.collection,
            "version": self.version,
            "digest": self.digest,
            "complete": self.complete,
            "entries": {p: w.to_json() for p, w in sorted(self.entries.items())},
        }
        if self.incoming:
            doc["incoming"] = {
                p: [w.to_json() for w in ws] for p, ws in sorted(self.incoming.items())
            }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, body: bytes, *, written_ns: int) -> Marker | None:
        """The marker, or None if `body` is not one this cairn can read."""
        try:
            doc = json.loads(body)
            if doc.get("format") != MARKER_FORMAT:
                return None
            return cls(
                ref=str(doc["ref"]),
                project=str(doc["project"]),
                collection=str(doc["collection"]),
                version=str(doc["version"]),
                digest=str(doc["digest"]),
                complete=bool(doc["complete"]),
                entries={p: Written.from_json(w) for p, w in doc["entries"].items()},
                incoming={
                    p: [Written.from_json(w) for w in ws]
                    for p, ws in doc.get("incoming", {}).items()
                },
                written_ns=written_ns,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def candidates(self, path: str) -> list[Written]:
        """What cairn may have left at `path`: what it wrote, or was about to write."""
        first = self.entries.get(path)
        return ([first] if first is not None else []) + self.incoming.get(path, [])

    def paths(self) -> set[str]:
        """Every path cairn wrote or may have written here."""
        return set(self.entries) | set(self.incoming)

    def stamp_matches(self, path: str, st: os.stat_result) -> Written | None:
        """The record of `path` if the file there has the very stamp cairn recorded for
        it, and that stamp is not too close to the marker's own to be trusted."""
        w = self.entries.get(path)
        if w is None or w.kind != "file" or w.mtime_ns is None:
            return None
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (w.size, w.mtime_ns, w.ino):
            return None
        if w.mtime_ns + RACY_NS >= self.written_ns:
            return None
        return w
