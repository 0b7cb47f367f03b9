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

A marker is read from its file without its entries in memory (`read`): they stay in the
file, read again in order as a get compares them with the folder and the version, and
copied as they are into the marker of the get under way.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import chain, islice, pairwise
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
    #: the entries as they are in the marker's file, when it was read from one (`read`;
    #: `entries` is then empty)
    stored: Stored | None = None

    def collection_ref(self) -> str:
        return f"{self.project}/{self.collection}"

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, compact), what `json.dumps(sort_keys=True)` of
        the document would give; written out directly, as it holds every path of the
        checkout."""
        head, tail = self.frame()
        return head.encode() + b"".join(self.entry_blocks()) + tail.encode()

    def records(self) -> Iterator[tuple[str, Written]]:
        """(path, record) of every entry, in path order; those of a marker read from its
        file are read from it again (Unreadable if they turn out not to be a marker's)."""
        if self.stored is not None:
            return self.stored.records()
        if all(a < b for a, b in pairwise(self.entries)):
            return iter(self.entries.items())
        return iter(sorted(self.entries.items()))

    def entry_blocks(self, size: int = 4096) -> Iterator[bytes]:
        """The text of the entries in path order, in blocks (the commas between entries
        included): a marker of a million paths is written without its whole text in
        memory. A stored marker's are copied from its file as they are."""
        if self.stored is not None:
            yield from self.stored.blocks()
            return
        it = self.records()
        first = True
        while chunk := list(islice(it, size)):
            yield (b"" if first else b",") + entry_texts(chunk).encode()
            first = False

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

    def candidates(self, path: str, record: Written | None) -> list[Written]:
        """What cairn may have left at `path`, whose entry is `record`: what it wrote, or
        was about to write (the entries of `incoming_versions` are the caller's to add)."""
        return ([record] if record is not None else []) + self.incoming.get(path, [])

    def trusts(self, record: Written, st: os.stat_result) -> bool:
        """Whether the file with stat `st` is the one an entry's `record` describes: the
        very stamp cairn recorded for it, not too close to the marker's own to be trusted."""
        if record.kind != "file" or record.mtime_ns is None:
            return False
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (record.size, record.mtime_ns, record.ino):
            return False
        return record.mtime_ns + RACY_NS < self.written_ns


class Unreadable(ValueError):
    """A marker read from its file whose entries turn out not to be a marker's (not JSON
    records, or not in path order): read it whole to tell (`Marker.from_bytes`)."""


_BLOCK = 1 << 20  # bytes of a stored marker read at a time
_ENTRIES = b'"entries":{'
_AFTER = b'},"format":'  # what ends the entries of a canonical marker


@dataclass(frozen=True)
class Stored:
    """The entries of a marker in its file `fd` (open while they are needed): the bytes
    from `start` to `end`, `"path":{record},...` in path order."""

    fd: int
    start: int
    end: int

    def blocks(self) -> Iterator[bytes]:
        pos = self.start
        while pos < self.end:
            block = os.pread(self.fd, min(_BLOCK, self.end - pos), pos)
            if not block:
                raise Unreadable("the marker is shorter than it was")
            pos += len(block)
            yield block

    def records(self) -> Iterator[tuple[str, Written]]:
        last = ""
        rest = b""
        blocks = self.blocks()
        for block in chain(blocks, [None]):
            text = rest + (block or b"")
            if block is None:
                parsed, rest = _entries(text, len(text)), b""
            else:
                parsed, rest = _parsed_prefix(text)
            for path, w in parsed.items():
                if not isinstance(w, Written) or path <= last:
                    raise Unreadable("not the records of a marker, in path order")
                last = path
                yield path, w
        if rest:
            raise Unreadable("the marker ends within a record")


def _parsed_prefix(text: bytes) -> tuple[dict[str, Any], bytes]:
    """The whole records at the start of `text`, parsed, and what follows them. Records
    are flat objects, so one ends where a `}` is followed by `,"` outside a string;
    inside one, that `"` would end the string and leave the text cut there unparsable."""
    cut = len(text)
    while (cut := text.rfind(b'},"', 0, cut)) >= 0:
        try:
            return _entries(text, cut + 1), text[cut + 2 :]
        except Unreadable:
            continue
    return {}, text


def _entries(text: bytes, cut: int) -> dict[str, Any]:
    if not cut:
        return {}
    try:
        doc = json.loads(b"{" + text[:cut] + b"}", object_hook=_written)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # as from_bytes
        raise Unreadable(str(exc)) from None
    return doc  # type: ignore[no-any-return]


def read(fd: int, *, written_ns: int) -> Marker | None:
    """The marker in the file `fd` (kept open by the caller while the marker is used),
    its entries left in the file when it is canonical, as cairn writes it; else read
    whole (`Marker.from_bytes`). None if it is not a marker this cairn can read."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, 1 << 16, 0)
    at = head.find(_ENTRIES)
    tail_at = _find_back(fd, size, _AFTER) if at >= 0 else -1
    start = at + len(_ENTRIES)
    if at < 0 or tail_at < start or not head.startswith(b'{"collection":'):
        return Marker.from_bytes(read_all(fd), written_ns=written_ns)
    end = tail_at
    tail = os.pread(fd, size - end, end) if end < size else b""
    outline = Marker.from_bytes(head[:start] + tail, written_ns=written_ns)
    if outline is None or outline.entries:
        return Marker.from_bytes(read_all(fd), written_ns=written_ns)
    return replace(outline, stored=Stored(fd, start, end))


def _find_back(fd: int, size: int, what: bytes) -> int:
    """Where the last `what` in the file starts, read from its end; -1 if nowhere."""
    pos, text = size, b""
    while pos > 0:
        step = min(pos, 1 << 16)
        pos -= step
        text = os.pread(fd, step, pos) + text
        found = text.rfind(what)
        if found >= 0:
            return pos + found
    return -1


def read_all(fd: int) -> bytes:
    """The whole file `fd`, in one read where the kernel allows (one copy of a large
    marker)."""
    size = os.fstat(fd).st_size
    chunks = []
    pos = 0
    while block := os.pread(fd, max(1 << 20, size + 1 - pos), pos):
        chunks.append(block)
        pos += len(block)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
