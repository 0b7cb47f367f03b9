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
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

_q = encode_basestring_ascii  # a JSON string, as json.dumps writes it

MARKER = ".cairn-checkout.json"
MARKER_FORMAT = 1
# a file written this close before the marker may have been edited within the same
# timestamp tick (ext4 stamps in jiffies, 4-10 ms): its stamp alone is not trusted
RACY_NS = 20_000_000


@dataclass(frozen=True, slots=True)
class Written:
    """What cairn put at one path: kind 'file' (digest, size, stamp), 'link' or 'dir'."""

    kind: str
    digest: str | None = None
    size: int = 0
    target: str | None = None
    mtime_ns: int | None = None
    ino: int | None = None

    def to_json(self) -> dict[str, Any]:
        # keys in sorted order, the empty ones left out: the marker's JSON is built for
        # every path of a checkout, twice per get (attribute by attribute, not by getattr)
        out: dict[str, Any] = {}
        if self.digest:
            out["digest"] = self.digest
        if self.ino:
            out["ino"] = self.ino
        out["kind"] = self.kind
        if self.mtime_ns:
            out["mtime_ns"] = self.mtime_ns
        if self.size:
            out["size"] = self.size
        if self.target:
            out["target"] = self.target
        return out

    def json_text(self) -> str:
        """`json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))`, faster."""
        parts = []
        if self.digest:
            parts.append(f'"digest":{_q(self.digest)}')
        if self.ino:
            parts.append(f'"ino":{int(self.ino)}')
        parts.append(f'"kind":{_q(self.kind)}')
        if self.mtime_ns:
            parts.append(f'"mtime_ns":{int(self.mtime_ns)}')
        if self.size:
            parts.append(f'"size":{int(self.size)}')
        if self.target:
            parts.append(f'"target":{_q(self.target)}')
        return "{" + ",".join(parts) + "}"

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
        """Canonical JSON (sorted keys, compact), what `json.dumps(sort_keys=True)` of
        the document would give; written out directly, as a get writes it twice and it
        holds every path of the checkout."""
        entries = ",".join(f"{_q(p)}:{w.json_text()}" for p, w in sorted(self.entries.items()))
        out = [
            f'{{"collection":{_q(self.collection)},"complete":{json.dumps(self.complete)}',
            f',"digest":{_q(self.digest)},"entries":{{{entries}}},"format":{MARKER_FORMAT}',
        ]
        if self.incoming:
            incoming = ",".join(
                f"{_q(p)}:[{','.join(w.json_text() for w in ws)}]"
                for p, ws in sorted(self.incoming.items())
            )
            out.append(f',"incoming":{{{incoming}}}')
        out.append(
            f',"project":{_q(self.project)},"ref":{_q(self.ref)},"version":{_q(self.version)}}}'
        )
        return "".join(out).encode()

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
