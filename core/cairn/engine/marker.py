"""The marker at the top of a checkout: what cairn wrote there, so a later get can tell
its own unmodified files from local edits and from files it did not make.

`.cairn-checkout.json` records the version checked out (ref, collection, manifest
digest) and, per path, what cairn put there: a file's digest, size and the stamp it had
when written (mtime, inode), a link's target, or a folder. A get in progress records
what it is about to write, so an interrupted get's own files are known to the re-run:
the manifests it was writing (`incoming_versions`, by digest: every entry of each may
be on disk), or, as format 1 wrote it, every such path (`incoming`). Naming the
manifest keeps the marker of a get under way as small as the marker before it,
however many files the version has (docs/FORMAT.md, "Checkouts").
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice, pairwise
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

_q = encode_basestring_ascii  # a JSON string, as json.dumps writes it

MARKER = ".cairn-checkout.json"
MARKER_FORMAT = 2
_READS = (1, 2)  # format 2 added `incoming_versions`
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
    #: while a get is under way, what it (or an interrupted get before it) may have
    #: written: paths with their contents (format 1) ...
    incoming: dict[str, list[Written]] = field(default_factory=dict)
    #: ... and the digests of the manifests it was writing, every entry of each
    incoming_versions: tuple[str, ...] = ()
    #: when the marker was written (its own mtime), to spot racily clean stamps
    written_ns: int = 0

    def collection_ref(self) -> str:
        return f"{self.project}/{self.collection}"

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, compact), what `json.dumps(sort_keys=True)` of
        the document would give; written out directly, as it holds every path of the
        checkout."""
        head, tail = self.frame()
        return (head + ",".join(self.entry_chunks()) + tail).encode()

    def entry_chunks(self, size: int = 4096) -> Iterator[str]:
        """The text of `entries` in path order, `size` entries at a time (comma-joined,
        the chunks to be joined by commas too): a marker of a million paths is written
        without its whole text in memory. Entries read from a marker are in order
        already (a get writes them so); only others are sorted."""
        items: Iterable[tuple[str, Written]] = self.entries.items()
        if not all(a < b for a, b in pairwise(self.entries)):
            items = sorted(items)
        it = iter(items)
        while chunk := list(islice(it, size)):
            yield entry_texts(chunk)

    def frame(self) -> tuple[str, str]:
        """The document's text before and after the contents of `entries`: a get writes
        the entries in between as it places the files, a batch at a time."""
        head = (
            f'{{"collection":{_q(self.collection)},"complete":{json.dumps(self.complete)}'
            f',"digest":{_q(self.digest)},"entries":{{'
        )
        tail = [f'}},"format":{MARKER_FORMAT}']
        if self.incoming:
            incoming = ",".join(
                f"{_q(p)}:[{','.join(w.json_text() for w in ws)}]"
                for p, ws in sorted(self.incoming.items())
            )
            tail.append(f',"incoming":{{{incoming}}}')
        if self.incoming_versions:
            tail.append(f',"incoming_versions":[{",".join(map(_q, self.incoming_versions))}]')
        tail.append(
            f',"project":{_q(self.project)},"ref":{_q(self.ref)},"version":{_q(self.version)}}}'
        )
        return head, "".join(tail)

    @classmethod
    def from_bytes(cls, body: bytes, *, written_ns: int) -> Marker | None:
        """The marker, or None if `body` is not one this cairn can read."""
        try:
            # each entry becomes a Written as soon as it is parsed: a marker of a million
            # paths is never a million dicts at once
            doc = json.loads(body, object_hook=_written)
            if doc.get("format") not in _READS:
                return None
            entries = doc["entries"]
            incoming = doc.get("incoming", {})
            if not all(isinstance(w, Written) for w in entries.values()) or not all(
                isinstance(w, Written) for ws in incoming.values() for w in ws
            ):
                return None
            return cls(
                ref=str(doc["ref"]),
                project=str(doc["project"]),
                collection=str(doc["collection"]),
                version=str(doc["version"]),
                digest=str(doc["digest"]),
                complete=bool(doc["complete"]),
                entries=entries,
                incoming={p: list(ws) for p, ws in incoming.items()},
                incoming_versions=tuple(str(d) for d in doc.get("incoming_versions", ())),
                written_ns=written_ns,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def candidates(self, path: str) -> list[Written]:
        """What cairn may have left at `path`, as the marker lists it: what it wrote, or
        was about to write (the entries of `incoming_versions` are the caller's to add)."""
        first = self.entries.get(path)
        return ([first] if first is not None else []) + self.incoming.get(path, [])

    def paths(self) -> set[str]:
        """Every path the marker lists as written or maybe written here."""
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


def _written(obj: dict[str, Any]) -> Any:
    """json's object hook: an entry record (a string `kind`) as a Written, else as is."""
    if isinstance(obj.get("kind"), str):
        return Written.from_json(obj)
    return obj


def entry_texts(items: Iterable[tuple[str, Written]]) -> str:
    """Entries as the marker's JSON holds them (path: record, comma-separated)."""
    return ",".join(f"{_q(p)}:{w.json_text()}" for p, w in items)


class Spool:
    """A marker's entries as a get places its files, a batch at a time: kept in a
    temporary file in `folder` (the cache), not in memory, until the marker is written
    (`copy_to` between the halves of `Marker.frame`)."""

    def __init__(self, folder: str) -> None:
        # an unnamed file where the system can: nothing is left behind by a crash
        self._file = tempfile.TemporaryFile(prefix=".tmp-marker-", dir=folder)  # noqa: SIM115
        self._any = False

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def add(self, items: Iterator[tuple[str, Written]]) -> None:
        text = entry_texts(items)
        if text:
            self._file.write((b"," if self._any else b"") + text.encode())
            self._any = True

    def copy_to(self, fd: int) -> None:
        self._file.flush()
        self._file.seek(0)
        while block := self._file.read(1 << 20):
            write_all(fd, block)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
