"""Manifests: the immutable map of logical path -> entry that a version is.

A manifest serialises canonically (sorted paths, sorted keys, compact separators), so
its BLAKE3 digest identifies the content of a version: two logs of identical content
have the same digest (DESIGN invariant 4).

Entries are files, symbolic links (a target inside the version) or empty folders. A
manifest of files alone is written as format 1, byte for byte what cairn wrote before
links existed (so old versions keep their digests); one with a link or a folder is
format 2, which older readers refuse instead of misreading (docs/FORMAT.md). A manifest
of more than `SHARD_THRESHOLD` entries is format 3: a root naming shards of sorted
entries (cairn.manifest_shards), read a shard at a time (`ShardedManifest`), never as
one document.
"""

from __future__ import annotations

import heapq
import threading
import zlib
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Collection, ItemsView, Iterable, Iterator, Mapping, ValuesView
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

import blake3

from .errors import IntegrityError
from .manifest_entry import DIR, FILE, KINDS, LINK, Chunk, Entry
from .manifest_shards import (
    FORMAT_FILES,
    FORMAT_LINKS,
    FORMAT_SHARDED,
    Cutter,
    ShardRef,
    Spool,
    canonical,
    checked,
    decode,
    entry_at,
    parse,
    read_raw,
    read_root,
    read_shard,
    root_bytes,
    unsupported,
)

#: manifest formats: 1 holds files only; 2 adds link and folder entries; 3 is sharded
FORMAT_VERSION = FORMAT_LINKS
#: a manifest of more entries than this is written as format 3
SHARD_THRESHOLD = 4096
_MAX_HOPS = 40
#: shards a sharded manifest keeps as JSON (`ShardedManifest.raw`)
_RAW_SHARDS = 32  # links followed while resolving one path, as Linux's ELOOP limit
#: entries of parsed shards a sharded manifest keeps (so a version of up to this many is
#: parsed once however often it is walked; a larger one is read again per walk)
CACHED_ENTRIES = 1 << 16

#: reads a stored manifest document (zlib-compressed or not) by digest
Loader = Callable[[str], bytes]
#: reads several stored manifest documents in one request: digest -> body
ManyLoader = Callable[[list[str]], dict[str, bytes]]

__all__ = [
    "DIR",
    "FILE",
    "FORMAT_FILES",
    "FORMAT_SHARDED",
    "FORMAT_VERSION",
    "KINDS",
    "LINK",
    "Chunk",
    "Diff",
    "Document",
    "Entry",
    "Manifest",
    "ShardedManifest",
    "build",
]


@dataclass(frozen=True)
class Document:
    """One stored document of a manifest (the whole of a format 1/2 one, or a format-3
    shard or root): its digest, its canonical bytes (`body`: as they are, or
    zlib-compressed), and what it holds."""

    digest: str
    body: bytes
    size: int
    files: int
    #: `packed`, being compressed in the background (`Spool.put`)
    ready: Future[bytes] | None = field(default=None, compare=False, repr=False)

    @property
    def packed(self) -> bytes:
        """The bytes zlib-compressed, as the catalog keeps them (level 1: `Spool.put`)."""
        if self.ready is not None:
            return self.ready.result()
        return zlib.compress(self.body, 1) if self.body[:1] == b"{" else self.body

    def text(self) -> bytes:
        """The canonical bytes, as the store keeps them."""
        return decode(self.body, expect_digest=None)


class Manifest(Mapping[str, Entry]):
    """An immutable, canonically ordered mapping of path -> Entry, held in memory."""

    __slots__ = ("_entries", "_digest", "_body", "_stored", "_as_read")

    def __init__(self, entries: Iterable[Entry] = (), *, in_order: bool = False):
        """`in_order`: the entries come from `checked` already (as `build` gives them),
        so they are neither sorted nor checked again."""
        if in_order:
            self._entries = {e.path: e for e in entries}
        else:
            by_path: dict[str, Entry] = {}
            for e in entries:
                by_path[e.path] = e
            self._entries = {e.path: e for e in checked(sorted(by_path.values(), key=_path))}
        self._digest: str | None = None
        self._body: bytes | None = None
        self._stored: ShardedManifest | None = None
        #: read from a format 1/2 document: stored as it was (the version's digest)
        self._as_read = False

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

    def stream(self) -> Iterator[Entry]:
        """Every entry in path order (`ShardedManifest.stream`)."""
        return iter(self._entries.values())

    def by_shard(self) -> Iterator[tuple[str | None, Iterator[Entry]]]:
        """The entries a shard at a time, in path order: (the shard's digest, its entries
        read as they are asked for). A manifest of one document is one part, digest None."""
        yield None, self.stream()

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
            e = self.get(here)
            if e is not None and e.kind == LINK and e.target is not None:
                hops += 1
                if hops > _MAX_HOPS:
                    raise IntegrityError(f"{path!r}: too many links (a loop?)")
                todo.extend(reversed(e.target.split("/")))
                continue
            done.append(name)
        return "/".join(done)

    def under(self, path: str) -> Iterator[str]:
        """`path` if it is an entry, then every path below the folder `path`, in order."""
        below = path + "/"
        return (p for p in self if p == path or p.startswith(below))

    def objects(self) -> set[str]:
        """Every store object digest this manifest needs."""
        return {d for e in self.values() for d in e.objects()}

    def each_object(self) -> Iterator[str]:
        """The store object digests this manifest needs, as a stream (a digest may come
        more than once): what a format-3 one walks without a set of a million."""
        return (d for e in self.values() for d in e.objects())

    # -- storage ---------------------------------------------------------------------------

    def _large(self) -> ShardedManifest | None:
        """This manifest as format 3, when it has too many entries for formats 1 and 2."""
        if self._stored is None and not self._as_read and len(self._entries) > SHARD_THRESHOLD:
            self._stored = ShardedManifest.made(iter(self._entries.values()))
        return self._stored

    def to_bytes(self) -> bytes:
        """Canonical JSON: the bytes the digest is taken over (a format-3 root)."""
        if self._body is None:
            large = self._large()
            if large is not None:
                self._body = large.to_bytes()
            else:
                plain = all(e.kind == FILE for e in self._entries.values())
                doc = {
                    "format": FORMAT_FILES if plain else FORMAT_VERSION,
                    "entries": {p: e.to_json() for p, e in self._entries.items()},
                }
                self._body = canonical(doc)
        return self._body

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = blake3.blake3(self.to_bytes()).hexdigest()
        return self._digest

    def compressed(self) -> bytes:
        """The document the digest is taken over, zlib-compressed (as the catalog keeps it)."""
        return zlib.compress(self.to_bytes(), 6)

    def shard_digests(self) -> tuple[str, ...]:
        """Digests of the shard documents (format 3); none for formats 1 and 2."""
        large = self._large()
        return large.shard_digests() if large is not None else ()

    def inherited(self) -> tuple[str, ...]:
        """Shards taken over unchanged from the manifest this one was made from (a draft's
        parent): stored wherever that one is."""
        large = self._large()
        return large.inherited() if large is not None else ()

    def documents(
        self, *, new_only: bool = False, only: Collection[str] | None = None
    ) -> Iterator[Document]:
        """Every document to store, shards before the root (the write order); with
        `new_only`, not the inherited shards; with `only`, just the shards named there."""
        large = self._large()
        if large is not None:
            yield from large.documents(new_only=new_only, only=only)
            return
        yield Document(self.digest, self.to_bytes(), self.size, self.file_count)

    def shard_objects(self, digest: str) -> set[str]:
        large = self._large()
        if large is None:
            raise KeyError(digest)
        return large.shard_objects(digest)

    @classmethod
    def from_bytes(
        cls,
        body: bytes,
        *,
        expect_digest: str | None = None,
        load: Loader | None = None,
        load_many: ManyLoader | None = None,
    ) -> Manifest:
        """A stored manifest (compressed or not), checked against its digest. A format-3
        root reads its shards with `load` (digest -> stored document) when they are needed,
        or several at once with `load_many` (`ShardedManifest.prefetch`)."""
        text = decode(body, expect_digest=expect_digest)
        doc = parse(text, f"manifest {expect_digest or ''}".strip())
        if doc.get("format") == FORMAT_SHARDED:
            return ShardedManifest(read_root(doc), load=load, load_many=load_many, root=text)
        doc = read_document(text, doc)
        m = cls(Entry.from_json(p, e) for p, e in doc["entries"].items())
        # a large format 1/2 manifest (written before format 3) keeps its bytes and digest
        m._body, m._as_read = text, True
        return m


class ShardedManifest(Manifest):
    """A format-3 manifest: its root in memory, its shards read one at a time when needed
    (a lookup reads the one shard that can hold the path; iteration streams them in
    order). Shards it made itself are kept compressed until stored; others are read with
    `load`."""

    __slots__ = (
        "_shards",
        "_lasts",
        "_spool",
        "_new",
        "_load",
        "_cache",
        "_cached",
        "_count",
        "_whole",
        "_lock",
        "_raws",
        "_load_many",
        "_fetched",
    )

    def __init__(
        self,
        shards: tuple[ShardRef, ...],
        *,
        load: Loader | None = None,
        load_many: ManyLoader | None = None,
        spool: Spool | None = None,
        root: bytes | None = None,
    ):
        self._shards = shards
        self._load_many = load_many
        self._fetched: dict[str, bytes] = {}  # prefetched, until read
        self._lasts = [s.last for s in shards]
        self._spool = spool or Spool()
        self._new = self._spool.digests()
        self._load = load
        self._cache: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self._cached = 0  # entries in `_cache`
        self._lock = threading.Lock()
        self._raws: OrderedDict[str, tuple[bytes, dict[str, Any] | None]] = OrderedDict()
        self._whole = False  # walked to the end once: its shards fit together (invariant 10)
        self._count = sum(s.count for s in shards)
        self._body = root
        self._digest = None
        self._stored = self
        self._entries = {}
        self._as_read = root is not None

    @classmethod
    def made(cls, entries: Iterator[Entry], *, load: Loader | None = None) -> ShardedManifest:
        """Cut checked entries, in path order, into new shards."""
        spool = Spool()
        refs: list[ShardRef] = []

        def keep(ref: ShardRef, body: bytes) -> None:
            spool.put(ref.digest, body)
            refs.append(ref)

        cutter = Cutter(keep)
        for e in entries:
            cutter.add(e)
        cutter.finish()
        return cls(tuple(refs), load=load, spool=spool)

    @property
    def shards(self) -> tuple[ShardRef, ...]:
        return self._shards

    def _large(self) -> ShardedManifest:
        return self

    def prefetch(self, paths: Iterable[str]) -> None:
        """Read the shards that hold or would hold `paths` in one request (`load_many`),
        those not read yet: a draft's changes fall in a few shards, each otherwise read
        with a request of its own."""
        if self._load_many is None:
            return
        at = {min(bisect_left(self._lasts, p), len(self._shards) - 1) for p in paths}
        with self._lock:
            digests = [
                d
                for d in dict.fromkeys(self._shards[i].digest for i in sorted(at))
                if d not in self._raws and d not in self._fetched and d not in self._new
            ]
        if len(digests) > 1:
            found = self._load_many(digests)
            with self._lock:
                self._fetched.update(found)

    def _stored_body(self, digest: str) -> bytes:
        packed = self._spool.get(digest)
        if packed is not None:
            return packed
        with self._lock:
            fetched = self._fetched.pop(digest, None)
        if fetched is not None:
            return fetched
        if self._load is None:
            raise IntegrityError(f"manifest shard {digest} cannot be read here")
        return self._load(digest)

    def raw(self, i: int) -> dict[str, Any]:
        """The `i`-th shard's entries as JSON (path -> object), checked against its digest
        and its root, no `Entry` made: what a draft reads of the shards it changes (the
        last few read are kept)."""
        text, found = self._held(i)
        if found is None:
            found = read_raw(text, self._shards[i])
            with self._lock:
                if self._shards[i].digest in self._raws:
                    self._raws[self._shards[i].digest] = (text, found)
        return found

    def text(self, i: int) -> bytes:
        """The `i`-th shard's canonical bytes, checked against its digest (a draft that
        only replaces entries edits them: `manifest_shards.spliced`)."""
        return self._held(i)[0]

    def _held(self, i: int) -> tuple[bytes, dict[str, Any] | None]:
        ref = self._shards[i]
        with self._lock:
            found = self._raws.get(ref.digest)
        if found is None:
            text = decode(self._stored_body(ref.digest), expect_digest=ref.digest, limit=ref.bytes)
            found = (text, None)
            with self._lock:
                self._raws[ref.digest] = found
                while len(self._raws) > _RAW_SHARDS:
                    self._raws.popitem(last=False)
        return found

    def near(self, path: str) -> dict[str, Any]:
        """The JSON of the shard that holds `path` or would (`raw`)."""
        return self.raw(min(bisect_left(self._lasts, path), len(self._shards) - 1))

    def has_leaf(self, path: str) -> bool:
        """Whether `path` is an entry (file, link or empty folder), found in its shard's
        bytes (`entry_at`) when they are canonical, else by parsing the shard."""
        i = self._find(path)
        if i is None:
            return False
        try:
            found = entry_at(self.text(i).decode("ascii"), path)
        except UnicodeDecodeError:
            found = None
        return found is not None or path in self.raw(i)

    def lookup(self, path: str) -> Entry | None:
        """The entry at `path`, if any, reading its shard's JSON only (`raw`)."""
        i = self._find(path)
        if i is None:
            return None
        data = self.raw(i).get(path)
        return None if data is None else Entry.from_json(path, data)

    def raw_keys_from(self, key: str) -> Iterator[str]:
        """`keys_from`, reading the shards' JSON only (`raw`)."""
        for i in range(bisect_left(self._lasts, key), len(self._shards)):
            yield from (p for p in self.raw(i) if p >= key)

    def read(self, ref: ShardRef) -> list[Entry]:
        """One shard's entries, checked against its digest and its root (a shard never
        decompresses to more bytes than the root says it has)."""
        text = decode(self._stored_body(ref.digest), expect_digest=ref.digest, limit=ref.bytes)
        return read_shard(text, ref)

    def _shard(self, i: int) -> dict[str, Entry]:
        ref = self._shards[i]
        with self._lock:
            found = self._cache.get(ref.digest)
            if found is not None:
                self._cache.move_to_end(ref.digest)
                return found
        found = {e.path: e for e in self.read(ref)}
        with self._lock:
            if ref.digest not in self._cache:
                self._cache[ref.digest] = found
                self._cached += len(found)
            while self._cached > CACHED_ENTRIES and len(self._cache) > 1:
                self._cached -= len(self._cache.popitem(last=False)[1])
        return found

    def shard(self, i: int) -> Mapping[str, Entry]:
        """The entries of the `i`-th shard by path (parsed shards are kept up to a budget)."""
        return self._shard(i)

    def _find(self, path: str) -> int | None:
        i = bisect_left(self._lasts, path)
        if i == len(self._shards) or self._shards[i].first > path:
            return None
        return i

    def __getitem__(self, path: str) -> Entry:
        i = self._find(path)
        if i is None:
            raise KeyError(path)
        return self._shard(i)[path]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def entries(self) -> Iterator[Entry]:
        """Every entry in path order, read one shard at a time; the first walk checks
        them as a stream (DESIGN invariant 10 across shards)."""
        if self._whole:
            return (e for i in range(len(self._shards)) for e in self._shard(i).values())
        return self._first_walk()

    def stream(self) -> Iterator[Entry]:
        """Every entry in path order, a shard at a time, the shards read not kept: one
        pass over a version of any size holds one shard (a get's walk)."""
        shards = (self._parsed(ref) for ref in self._shards)
        walk = (e for shard in shards for e in shard)
        if self._whole:
            return walk
        return self._checked(walk)

    def by_shard(self) -> Iterator[tuple[str | None, Iterator[Entry]]]:
        """Shard by shard, none kept: what versions share (a draft's parent's shards) can
        be skipped by digest, read once."""
        for ref in self._shards:
            yield ref.digest, self._entries_of(ref)

    def _entries_of(self, ref: ShardRef) -> Iterator[Entry]:
        yield from self._parsed(ref)  # read once asked for: a skipped shard is not read

    def _parsed(self, ref: ShardRef) -> Iterable[Entry]:
        with self._lock:
            found = self._cache.get(ref.digest)
        return self.read(ref) if found is None else found.values()

    def _checked(self, walk: Iterator[Entry]) -> Iterator[Entry]:
        yield from checked(walk)
        self._whole = True

    def _first_walk(self) -> Iterator[Entry]:
        yield from checked(e for i in range(len(self._shards)) for e in self._shard(i).values())
        self._whole = True

    def __iter__(self) -> Iterator[str]:
        return (e.path for e in self.entries())

    def values(self) -> Any:
        return _Values(self)

    def items(self) -> Any:
        return _Items(self)

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        return sum(s.size for s in self._shards)

    @property
    def file_count(self) -> int:
        return sum(s.files for s in self._shards)

    def under(self, path: str) -> Iterator[str]:
        below = path + "/"
        if path in self:
            yield path
        start = bisect_left(self._lasts, below)
        for i in range(start, len(self._shards)):
            if self._shards[i].first >= path + "0":
                return
            for p in self._shard(i):
                if p.startswith(below):
                    yield p

    def keys_from(self, key: str) -> Iterator[str]:
        """Paths >= `key`, in order, reading shards from the one that can hold `key` on."""
        for i in range(bisect_left(self._lasts, key), len(self._shards)):
            yield from (p for p in self._shard(i) if p >= key)

    def to_bytes(self) -> bytes:
        if self._body is None:
            self._body = root_bytes(self._shards)
        return self._body

    def shard_digests(self) -> tuple[str, ...]:
        return tuple(s.digest for s in self._shards)

    def inherited(self) -> tuple[str, ...]:
        return tuple(s.digest for s in self._shards if s.digest not in self._new)

    def documents(
        self, *, new_only: bool = False, only: Collection[str] | None = None
    ) -> Iterator[Document]:
        for ref in self._shards:
            if only is not None and ref.digest not in only:
                continue
            if not new_only or ref.digest in self._new:
                body = self._stored_body(ref.digest)
                ready = self._spool.packed(ref.digest)
                yield Document(ref.digest, body, ref.size, ref.files, ready)
        if only is None:
            yield Document(self.digest, self.to_bytes(), self.size, self.file_count)

    def shard_objects(self, digest: str) -> set[str]:
        """The objects one shard's entries need, read from its JSON without an `Entry`
        made per path (its digest and its root's claims are still checked)."""
        ref = next(s for s in self._shards if s.digest == digest)
        text = decode(self._stored_body(ref.digest), expect_digest=ref.digest, limit=ref.bytes)
        return {d for p, e in read_raw(text, ref).items() for d in Entry.objects_of_json(p, e)}

    def objects(self) -> set[str]:
        return {d for ref in self._shards for e in self.read(ref) for d in e.objects()}

    def each_object(self) -> Iterator[str]:
        """A shard at a time, around the cache of parsed shards (one pass over a million
        entries should not leave tens of thousands parsed behind)."""
        return (d for ref in self._shards for e in self.read(ref) for d in e.objects())


class _Values(ValuesView[Entry]):
    """A sharded manifest's entries, streamed a shard at a time."""

    def __init__(self, manifest: ShardedManifest):
        super().__init__(manifest)
        self._of = manifest

    def __iter__(self) -> Iterator[Entry]:
        return self._of.entries()


class _Items(ItemsView[str, Entry]):
    """A sharded manifest's (path, entry) pairs, streamed a shard at a time."""

    def __init__(self, manifest: ShardedManifest):
        super().__init__(manifest)
        self._of = manifest

    def __iter__(self) -> Iterator[tuple[str, Entry]]:
        return ((e.path, e) for e in self._of.entries())


def build(entries: Iterable[Entry], *, load: Loader | None = None) -> Manifest:
    """A manifest from entries in strictly increasing path order, streamed: in memory up to
    `SHARD_THRESHOLD` entries (formats 1 and 2), else cut into shards as they come."""
    stream = checked(entries)
    head = list(islice(stream, SHARD_THRESHOLD + 1))
    if len(head) <= SHARD_THRESHOLD:
        return Manifest(head, in_order=True)
    return ShardedManifest.made(chain(head, stream), load=load)


def is_sharded(text: bytes) -> bool:
    """Whether a manifest's canonical bytes are a format-3 root (its first key is `format`;
    formats 1 and 2 begin with `entries`)."""
    return text.startswith(b'{"format":')


def parse_document(body: bytes, *, expect_digest: str | None = None) -> dict[str, Any]:
    """A format 1/2 manifest's JSON document (`{"entries": {path: entry}, "format": 1 or 2}`),
    its digest and format checked, without building an `Entry` per path (see cairn.tree)."""
    return read_document(verified_json(body, expect_digest=expect_digest))


def verified_json(body: bytes, *, expect_digest: str | None = None) -> bytes:
    """A stored manifest (compressed or not) as its canonical JSON, checked against its
    digest: the bytes the digest was taken over."""
    return decode(body, expect_digest=expect_digest)


def stored_document(body: bytes, *, expect_digest: str) -> tuple[bytes, tuple[ShardRef, ...]]:
    """A stored manifest as the catalog keeps it (zlib-compressed; `body` itself when it
    is) and, for format 3, its shards: checked against its digest and read as far as its
    format and structure, with no Entry made per path (what `recover` restores)."""
    text = decode(body, expect_digest=expect_digest)
    doc = parse(text, f"manifest {expect_digest}")
    if doc.get("format") == FORMAT_SHARDED:
        shards = read_root(doc)
    else:
        read_document(text, doc)
        shards = ()
    return (zlib.compress(text, 6) if body[:1] == b"{" else body), shards


def read_document(text: bytes, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parsed JSON of a format 1/2 manifest, its format checked."""
    if doc is None:
        doc = parse(text, "manifest")
    form = doc.get("format")
    if form not in (FORMAT_FILES, FORMAT_VERSION):
        raise unsupported(form)
    entries = doc.get("entries")
    if not isinstance(entries, dict):
        raise IntegrityError("manifest is corrupt: it has no entries")
    if form == FORMAT_FILES:
        for p, e in entries.items():
            if "kind" in e:
                raise IntegrityError(
                    f"manifest format 1 has a {e['kind']!r} entry at {p!r}: only format 2 "
                    "holds links and folders; the manifest is corrupt"
                )
    return doc


def _path(e: Entry) -> str:
    return e.path


@dataclass(frozen=True)
class Diff:
    """Paths added, removed and modified between two manifests."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]

    @classmethod
    def between(cls, old: Mapping[str, Entry], new: Mapping[str, Entry]) -> Diff:
        """A sorted merge of both manifests' entries; shards both have are skipped unread
        (the same shard holds the same entries)."""
        common = set(_shards_of(old)) & set(_shards_of(new))
        added: list[str] = []
        removed: list[str] = []
        modified: list[str] = []
        a, b = _entries_outside(old, common), _entries_outside(new, common)
        tagged = heapq.merge(
            ((e.path, 0, e) for e in a), ((e.path, 1, e) for e in b), key=lambda t: t[:2]
        )
        pending: tuple[str, int, Entry] | None = None
        for item in tagged:
            if pending is not None and pending[0] == item[0]:
                if not pending[2].same_content(item[2]):
                    modified.append(item[0])
                pending = None
                continue
            if pending is not None:
                (removed if pending[1] == 0 else added).append(pending[0])
            pending = item
        if pending is not None:
            (removed if pending[1] == 0 else added).append(pending[0])
        return cls(added=tuple(added), removed=tuple(removed), modified=tuple(modified))

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)


def _shards_of(m: Mapping[str, Entry]) -> tuple[str, ...]:
    return m.shard_digests() if isinstance(m, ShardedManifest) else ()


def _entries_outside(m: Mapping[str, Entry], skip: set[str]) -> Iterator[Entry]:
    """`m`'s entries in path order, but those of the shards in `skip`."""
    if isinstance(m, ShardedManifest):
        return (e for ref in m.shards if ref.digest not in skip for e in m.read(ref))
    return (m[p] for p in sorted(m))
