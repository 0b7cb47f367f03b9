"""Format 3 manifests: a small root document naming shards, each a sorted run of entries.

A large version's manifest is not one document: its entries, in path order, are cut into
shards at content-defined boundaries (after an entry whose path's CRC-32 has `SHARD_BITS`
low zero bits, or after `SHARD_MAX` entries since the last boundary), each shard stored
as its own content-addressed document, and a root lists them with their first and last
path, counts, size and digest. The version digest is the root's BLAKE3. A boundary
depends only on the entries since the previous one, so a change to a few paths rewrites
only the shards they fall in (and the root): every other shard is byte for byte the
parent's, shared in the store and the catalog (docs/FORMAT.md, "Manifest format 3").

This module holds the documents (canonical bytes, bounded and checked decoding), the
cutter and the streaming check of invariant 10 (no path both a leaf and a folder).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

import blake3

from .errors import IntegrityError
from .manifest_entry import DIR, FILE, LINK, Entry, unknown_kind
from .names import check_link_target

FORMAT_FILES, FORMAT_LINKS, FORMAT_SHARDED = 1, 2, 3
#: a boundary follows an entry whose path's CRC-32 has this many low zero bits (so a
#: shard holds 2**SHARD_BITS entries on average) ...
SHARD_BITS = 10
#: ... or the SHARD_MAX-th entry since the previous boundary
SHARD_MAX = 8192
#: a stored manifest document decompressing to more than this is refused unread
MAX_DOCUMENT = 1 << 30
#: bytes of shards a manifest being made keeps in memory; more go, compressed, to a temporary file
SPOOL_MEMORY = 16 << 20


def canonical(doc: dict[str, Any]) -> bytes:
    """Sorted keys, compact separators: the bytes a digest is taken over."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(body: bytes, *, expect_digest: str | None, limit: int = MAX_DOCUMENT) -> bytes:
    """A stored manifest document (zlib-compressed or not) as its canonical bytes, at most
    `limit` of them (more is never decompressed), checked against `expect_digest`."""
    name = f"manifest {expect_digest}" if expect_digest else "a manifest"
    if body[:1] == b"{":
        text = body
    else:
        inflate = zlib.decompressobj()
        try:
            text = inflate.decompress(body, limit + 1)
        except zlib.error as exc:
            raise IntegrityError(f"{name} is corrupt: {exc}") from None
        if len(text) <= limit and not inflate.eof:
            raise IntegrityError(f"{name} is corrupt: it is truncated")
    if len(text) > limit:
        raise IntegrityError(f"{name} is corrupt: it is larger than the {limit} bytes it may be")
    if expect_digest and blake3.blake3(text).hexdigest() != expect_digest:
        raise IntegrityError(f"{name} is corrupt: its digest does not match")
    return text


def parse(text: bytes, what: str) -> dict[str, Any]:
    """The JSON object in `text` (IntegrityError if it is none)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise IntegrityError(f"{what} is corrupt: {exc}") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is corrupt: not a JSON object")
    return doc


def unsupported(form: object) -> IntegrityError:
    return IntegrityError(
        f"manifest format {form!r} is not supported by this cairn "
        f"(knows {FORMAT_FILES}, {FORMAT_LINKS} and {FORMAT_SHARDED}); upgrade cairn"
    )


def is_boundary(path: str) -> bool:
    """Whether a shard ends after the entry at `path` whatever came before it."""
    return zlib.crc32(path.encode()) & ((1 << SHARD_BITS) - 1) == 0


@dataclass(frozen=True)
class ShardRef:
    """What the root says of one shard: its paths' range, counts, size and digest."""

    first: str
    last: str
    count: int  # entries
    files: int  # entries that are not empty folders
    size: int  # bytes of the files
    bytes: int  # length of the shard's canonical document
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "count": self.count,
            "digest": self.digest,
            "files": self.files,
            "first": self.first,
            "last": self.last,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, data: Any) -> ShardRef:
        try:
            ref = cls(
                first=data["first"],
                last=data["last"],
                count=data["count"],
                files=data["files"],
                size=data["size"],
                bytes=data["bytes"],
                digest=data["digest"],
            )
        except (KeyError, TypeError):
            raise IntegrityError("manifest root is corrupt: a shard lacks a field") from None
        numbers = (ref.count, ref.files, ref.size, ref.bytes)
        if not all(type(n) is int and n >= 0 for n in numbers) or not (
            isinstance(ref.first, str) and isinstance(ref.last, str)
        ):
            raise IntegrityError("manifest root is corrupt: a shard has a bad field")
        if not (isinstance(ref.digest, str) and len(ref.digest) == 64):
            raise IntegrityError("manifest root is corrupt: a shard has a bad digest")
        if ref.count < 1 or ref.first > ref.last or ref.bytes > MAX_DOCUMENT:
            raise IntegrityError(f"manifest root is corrupt: shard {ref.digest} is inconsistent")
        return ref


def root_bytes(shards: Iterable[ShardRef]) -> bytes:
    return canonical({"format": FORMAT_SHARDED, "shards": [s.to_json() for s in shards]})


def read_root(doc: dict[str, Any]) -> tuple[ShardRef, ...]:
    """The shards a root document lists, checked: in path order, without overlap."""
    raw = doc.get("shards")
    if not isinstance(raw, list) or not raw or "entries" in doc:
        raise IntegrityError("manifest root is corrupt: it lists no shards")
    shards = tuple(ShardRef.from_json(s) for s in raw)
    for a, b in zip(shards, shards[1:], strict=False):
        if not a.last < b.first:
            raise IntegrityError("manifest root is corrupt: its shards overlap or are unsorted")
    return shards


def shard_bytes(entries: list[Entry]) -> bytes:
    return canonical({"entries": {e.path: e.to_json() for e in entries}, "format": FORMAT_SHARDED})


def read_shard(text: bytes, ref: ShardRef) -> list[Entry]:
    """A shard's entries, checked against what the root says of it."""
    return [Entry.from_json(p, e) for p, e in read_raw(text, ref).items()]


def read_raw(text: bytes, ref: ShardRef) -> dict[str, Any]:
    """A shard's entries as their JSON (path -> object), checked against what the root
    says of it, without an `Entry` made per path: what a draft cuts again (an entry is
    checked when it is read as one)."""
    what = f"manifest shard {ref.digest}"
    doc = parse(text, what)
    if doc.get("format") != FORMAT_SHARDED:
        raise unsupported(doc.get("format"))
    raw = doc.get("entries")
    if not isinstance(raw, dict) or len(raw) != ref.count:
        raise IntegrityError(f"{what} is corrupt: it does not hold the entries its root names")
    paths = iter(raw)
    first = next(paths)
    last = first
    for last in paths:  # noqa: B007 - the last key
        pass
    if first != ref.first or last != ref.last or not all(isinstance(e, dict) for e in raw.values()):
        raise IntegrityError(f"{what} is corrupt: its paths are not those its root names")
    return raw


def entry_at(text: str, path: str) -> tuple[int, int, dict[str, Any]] | None:
    """Where the entry at `path` is in a shard's canonical text, without parsing the rest:
    (where its key starts, where its value ends, the value). None when the key followed
    by an object is not found exactly once after a `{` or `,`, or its value does not read
    back to the same bytes: no such entry, or a shard not written in canonical form (the
    caller then parses the shard). In a canonical shard an object follows a key only at
    the top level and under "pin" (whose values are never objects: `Entry.to_json`)."""
    key = json.dumps(path) + ":"
    found = text.find(key + "{")
    if found < 1 or text[found - 1] not in "{," or text.find(key + "{", found + 1) >= 0:
        return None
    try:
        value, end = _DECODER.raw_decode(text, found + len(key))
    except ValueError:
        return None
    if not isinstance(value, dict) or text[found:end] != key + canonical(value).decode():
        return None
    return found, end, value


_DECODER = json.JSONDecoder()


def spliced(
    text: bytes, ref: ShardRef, puts: list[tuple[str, dict[str, Any]]]
) -> tuple[ShardRef, bytes] | None:
    """The shard whose canonical bytes are `text` (described by `ref`) with the entries at
    some of its paths replaced by `puts` (path, JSON; in path order): the same paths and
    count, so the same cut, and only the changed entries encoded, found and edited in
    `text` (`entry_at`). None when one is not found: the caller cuts the entries again."""
    try:
        doc = text.decode("ascii")
    except UnicodeDecodeError:  # canonical JSON is ASCII: not in canonical form
        return None
    pieces: list[str] = []
    at, files, size = 0, ref.files, ref.size
    for path, data in puts:
        found = entry_at(doc, path)
        if found is None or found[0] < at:
            return None
        start, end, old = found
        pieces += (doc[at:start], json.dumps(path), ":", canonical(data).decode())
        at = end
        files += (data.get("kind") != DIR) - (old.get("kind") != DIR)
        size += int(data.get("size", 0)) - int(old.get("size", 0))
    pieces.append(doc[at:])
    body = "".join(pieces).encode()
    return (
        ShardRef(
            first=ref.first,
            last=ref.last,
            count=ref.count,
            files=files,
            size=size,
            bytes=len(body),
            digest=blake3.blake3(body).hexdigest(),
        ),
        body,
    )


@dataclass
class Cutter:
    """Cuts a sorted stream of entries into shards; `emit` receives each shard's reference
    and canonical bytes."""

    emit: Callable[[ShardRef, bytes], None]

    def __post_init__(self) -> None:
        self._run: dict[str, Any] = {}  # path -> the entry's JSON

    @property
    def busy(self) -> bool:
        """Whether entries wait since the last boundary."""
        return bool(self._run)

    def add(self, entry: Entry) -> None:
        self.add_json(entry.path, entry.to_json())

    def add_json(self, path: str, data: dict[str, Any]) -> None:
        """Add an entry as its JSON (`Entry.to_json()`'s, or as read from a stored shard)."""
        self._run[path] = data
        if len(self._run) >= SHARD_MAX or is_boundary(path):
            self.finish()

    def finish(self) -> None:
        run = self._run
        if not run:
            return
        self._run = {}
        body = canonical({"entries": run, "format": FORMAT_SHARDED})
        paths = list(run)
        ref = ShardRef(
            first=paths[0],
            last=paths[-1],
            count=len(run),
            files=sum(1 for e in run.values() if e.get("kind") != DIR),
            size=sum(int(e.get("size", 0)) for e in run.values()),
            bytes=len(body),
            digest=blake3.blake3(body).hexdigest(),
        )
        self.emit(ref, body)


def checked(entries: Iterable[Entry]) -> Iterator[Entry]:
    """The entries (in strictly increasing path order) checked as a stream: known kinds,
    link targets inside the version, no path both a leaf and a folder of another; an
    empty-folder entry with something in it is dropped (the folder exists anyway).

    Memory is bounded by path depth: every path below `p/` lies between `p/` and `p0`, so
    only leaves whose range the stream is still in are kept (each a prefix of the next).
    Entries after an empty-folder entry are held until it is known to stay or go.
    """
    stack: list[Entry] = []
    held: list[Entry] = []
    dropped: set[str] = set()
    folders = 0  # empty-folder entries in `stack`
    last: str | None = None
    for e in entries:
        p = e.path
        if last is not None and p <= last:
            raise IntegrityError(f"manifest paths out of order at {p!r}: the manifest is corrupt")
        last = p
        if e.kind == LINK:
            check_link_target(p, e.target or "")
        elif e.kind not in (FILE, DIR):
            raise unknown_kind(p, e.kind)
        while stack and not (p.startswith(stack[-1].path) and p[len(stack[-1].path)] <= "/"):
            folders -= stack.pop().kind == DIR
        if stack and p[len(stack[-1].path)] == "/":
            top = stack.pop()
            if top.kind != DIR:
                raise IntegrityError(
                    f"path {top.path!r} is both a file and a folder of {p!r}; rename one"
                )
            folders -= 1
            dropped.add(top.path)
        stack.append(e)
        if e.kind == DIR:
            folders += 1
        if folders:
            held.append(e)
            continue
        if held:
            yield from [h for h in held if h.path not in dropped]
            held.clear()
            dropped.clear()
        yield e
    yield from (h for h in held if h.path not in dropped)


class Spool:
    """Shards a manifest made, until they are stored: their canonical bytes in memory up
    to `SPOOL_MEMORY` bytes, then zlib-compressed in a temporary file (so making a
    manifest of a million entries holds its shards on disk, not in memory). A draft's few
    shards stay in memory as they are, which the store takes; the catalog's compressed
    copy is made in a background thread meanwhile (zlib lets go of the GIL), so it costs
    the draft no time while the store makes the shards durable."""

    def __init__(self) -> None:
        self._memory: dict[str, bytes] = {}
        self._packing: dict[str, Future[bytes]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._held = 0
        self._file: IO[bytes] | None = None
        self._at: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def put(self, digest: str, body: bytes) -> None:
        """Keep a shard's canonical `body` under its digest (in the file at zlib level 1:
        a few percent larger than level 6 and many times faster, which a put of many
        shards' cost is made of)."""
        with self._lock:
            if digest in self._memory or digest in self._at:
                return
            if self._file is None and self._held + len(body) <= SPOOL_MEMORY:
                self._memory[digest] = body
                self._held += len(body)
                if self._pool is None:  # its thread ends when the spool is collected
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="cairn-spool")
                self._packing[digest] = self._pool.submit(zlib.compress, body, 1)
                return
        packed = zlib.compress(body, 1)
        with self._lock:
            if digest in self._at:
                return
            if self._file is None:
                # removed when closed, at the latest when the spool is collected
                self._file = tempfile.TemporaryFile(prefix="cairn-shards-")  # noqa: SIM115
            at = self._file.seek(0, os.SEEK_END)
            self._file.write(packed)
            self._at[digest] = (at, len(packed))

    def get(self, digest: str) -> bytes | None:
        """A kept shard, canonical or compressed (`decode` reads either); None if it is
        not one of these."""
        with self._lock:
            found = self._memory.get(digest)
            if found is not None or digest not in self._at:
                return found
            assert self._file is not None
            at, length = self._at[digest]
            self._file.seek(at)
            return self._file.read(length)

    def packed(self, digest: str) -> Future[bytes] | None:
        """The compressed copy of a shard kept in memory, being made (None for others)."""
        with self._lock:
            return self._packing.get(digest)

    def digests(self) -> frozenset[str]:
        return frozenset(self._memory) | frozenset(self._at)
