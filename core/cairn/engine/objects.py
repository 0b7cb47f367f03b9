"""Stored objects by digest, loose or packed (docs/FORMAT.md "Packs").

A log that sends many small objects writes them together as one **pack**: their bytes
back to back, then an index, then a trailer. One request stores thousands of small
files instead of one request each, which is what a remote store charges for (in
time and money). The catalog's pack index (`cairn.catalog.packs`) says where each
packed object is; an object it does not know is loose, at `objects/<digest>`.

Reads here return bytes unverified: every caller checks them against their digest
(DESIGN invariant 9). Ranges of one pack that lie close together are read with one
request.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

import blake3

from ..catalog import damaged, packs
from ..catalog.packs import Member
from ..foundation.errors import IntegrityError
from ..foundation.layout import object_key, pack_key
from ..storage import Batch, Store
from .placecache import Layout

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ..catalog import Catalog

#: objects up to this size are packed; larger ones cost little per byte to send alone
MEMBER_MAX = 256 << 10
#: a pack is closed at about this many bytes
PACK_BYTES = 16 << 20
#: a log packs its new small objects only when it has at least this many: below that
#: the requests saved do not pay for the pack's own catalog round trips
PACK_MIN = 16
_MAGIC = b"CAIRNPK1"
_TRAILER = struct.Struct(">Q8s")  # length of the index JSON, magic
# ranges of one pack at most this far apart are read with one request
_GAP = 256 << 10
_SPAN_MAX = 16 << 20


def build(blobs: Iterable[tuple[str, bytes | memoryview]]) -> tuple[str, bytes, list[Member]]:
    """Lay out a pack: (its digest, its bytes, where each object is in it)."""
    parts: list[bytes | memoryview] = []
    index: list[tuple[str, int, int]] = []
    at = 0
    for d, data in blobs:
        parts.append(data)
        index.append((d, at, len(data)))
        at += len(data)
    body = json.dumps({"format": 1, "objects": index}, separators=(",", ":")).encode()
    data = b"".join([*parts, body, _TRAILER.pack(len(body), _MAGIC)])
    pack = blake3.blake3(data).hexdigest()
    return pack, data, [Member(d, pack, start, size) for d, start, size in index]


def read_index(pack: str, data: bytes) -> list[Member]:
    """The objects a whole pack's bytes hold, from its own index."""
    if len(data) < _TRAILER.size:
        raise IntegrityError(f"pack {pack} is too short to be a pack")
    length, magic = _TRAILER.unpack(data[-_TRAILER.size :])
    if magic != _MAGIC or length > len(data) - _TRAILER.size:
        raise IntegrityError(f"pack {pack} has no pack trailer")
    body = json.loads(data[-_TRAILER.size - length : -_TRAILER.size])
    return [Member(d, pack, start, size) for d, start, size in body["objects"]]


def groups(blobs: dict[str, bytes | memoryview]) -> list[list[tuple[str, bytes | memoryview]]]:
    """Split objects into packs of about PACK_BYTES each, evenly."""
    items = list(blobs.items())
    total = sum(len(b) for _, b in items)
    n = max(1, -(-total // PACK_BYTES))
    share = -(-total // n)
    out: list[list[tuple[str, bytes | memoryview]]] = [[]]
    size = 0
    for item in items:
        if size >= share:
            out.append([])
            size = 0
        out[-1].append(item)
        size += len(item[1])
    return out


@dataclass(frozen=True)
class Presence:
    """Which of some objects a namespace holds intact, as far as a cheap check can tell."""

    #: stored loose, or packed in a pack that is stored, and not reported damaged
    present: set[str]
    #: absent although the catalog knows them: reported damaged (`cairn verify`), or
    #: indexed in a pack that is gone. A good copy stored for one is a repair: its
    #: damaged row goes, and so does its pack index row if it has one (`indexed`).
    repair: set[str]
    indexed: set[str]
    #: the ones whose pack is gone (not reported damaged yet)
    lost: set[str]


def presence(store: Store, conn: Connection, namespace: str, digests: Iterable[str]) -> Presence:
    """Check, in one batched existence call, which of `digests` `namespace` holds intact.

    A packed object exists when its pack does: one key per pack, however many objects
    it holds. Objects `cairn verify` reported damaged count as absent, stored or not.
    """
    wanted = set(digests)
    bad = damaged.digests(conn, namespace) & wanted
    holding, loose = packs.split(conn, namespace, wanted)
    pack_keys = {pack_key(p, namespace=namespace): p for p in holding}
    loose_keys = {object_key(d, namespace=namespace): d for d in loose}
    found = store.exists_many([*pack_keys, *loose_keys])
    packed = wanted - loose
    lost: set[str] = set()
    if any(k not in found for k in pack_keys):  # a pack is gone: which objects were in it
        gone = {p for k, p in pack_keys.items() if k not in found}
        lost = {d for d, m in packs.lookup(conn, namespace, packed).items() if m.pack in gone}
    present = {d for k, d in loose_keys.items() if k in found} | (packed - lost)
    repair = bad | lost
    return Presence(present - bad, repair, repair & packed, lost - bad)


def where(conn: Connection, namespace: str, digests: Iterable[str]) -> Layout:
    """Which packs hold those of `digests` that are packed, and which are loose, with the
    pack index epoch read first (a change after it makes the answer stale, never wrong).
    The digests may come as a stream: they are asked about a bounded batch at a time."""
    now = packs.epoch(conn, namespace)
    holding: set[str] = set()
    loose: set[str] = set()
    for part in _parts(iter(digests)):
        found, alone = packs.split(conn, namespace, part)
        holding |= found
        loose |= alone
    return Layout(now, frozenset(holding), frozenset(loose))


#: digests asked about at a time when a stream of them is looked up
_WHERE_BATCH = 1 << 14


def _parts(digests: Iterator[str]) -> Iterator[list[str]]:
    while part := list(islice(digests, _WHERE_BATCH)):
        yield part


def intact(
    store: Store,
    conn: Connection,
    namespace: str,
    digests: Iterable[str],
    *,
    remembered: Layout | None = None,
) -> Layout | None:
    """Where `digests` are, if `namespace` holds every one of them intact; else None.

    None of them reported damaged, and the store has every loose one and every pack
    holding the others: one batched existence call, a key per pack. `remembered` (where
    they were found before) spares asking the pack index, while its epoch stands; with
    it and nothing damaged, `digests` (a stream, maybe of a million) is not even read.
    """
    bad = damaged.digests(conn, namespace)
    now = packs.epoch(conn, namespace)
    layout = remembered if remembered is not None and remembered.epoch == now else None
    try:
        if bad:
            digests = _checked(digests, bad)
        if layout is None:
            layout = where(conn, namespace, digests)
        elif bad:
            for _ in digests:
                pass
    except _Damaged:
        return None
    keys = [pack_key(p, namespace=namespace) for p in layout.packs]
    keys += [object_key(d, namespace=namespace) for d in layout.loose]
    return layout if len(store.exists_many(keys)) == len(keys) else None


class _Damaged(Exception):
    """One of the digests is reported damaged."""


def _checked(digests: Iterable[str], bad: set[str]) -> Iterator[str]:
    for d in digests:
        if d in bad:
            raise _Damaged(d)
        yield d


class Objects:
    """Reads objects of any namespace, wherever they are; `catalog` None: loose only."""

    def __init__(self, store: Store, catalog: Catalog | None):
        self.store = store
        self.catalog = catalog

    def locate(self, namespace: str, digests: Iterable[str]) -> dict[str, Member]:
        """Where the packed ones of `digests` are; the others are loose."""
        if self.catalog is None:
            return {}
        with self.catalog.read() as conn:
            return packs.lookup(conn, namespace, digests)

    def get(self, namespace: str, digest: str, *, where: dict[str, Member] | None = None) -> bytes:
        """One object's bytes; FileNotFoundError if it is stored nowhere."""
        got = self.get_many(namespace, [digest], where=where)
        if digest in got.failed:
            raise got.failed[digest]
        return got.ok[digest]

    def get_many(
        self, namespace: str, digests: Iterable[str], *, where: dict[str, Member] | None = None
    ) -> Batch[bytes]:
        """Read objects (by digest; `where`: their places, if located already). A missing
        object fails with FileNotFoundError in the result."""
        wanted = list(dict.fromkeys(digests))
        if where is None:
            where = self.locate(namespace, wanted)
        out: Batch[bytes] = Batch()
        loose = {object_key(d, namespace=namespace): d for d in wanted if d not in where}
        if loose:
            got = self.store.get_many(loose)
            out.ok.update((loose[k], data) for k, data in got.ok.items())
            out.failed.update((loose[k], exc) for k, exc in got.failed.items())
        self._read_packed(namespace, [where[d] for d in wanted if d in where], out, again=True)
        return out

    def _read_packed(
        self, namespace: str, members: list[Member], out: Batch[bytes], *, again: bool
    ) -> None:
        lost: list[Member] = []
        for span in spans(members):
            first, last = span[0], span[-1]
            try:
                data = self.store.get_range(
                    pack_key(first.pack, namespace=namespace),
                    first.start,
                    last.start + last.size,
                )
            except FileNotFoundError:
                lost += span
                continue
            except Exception as exc:
                out.failed.update((m.digest, exc) for m in span)
                continue
            for m in span:
                piece = data[m.start - first.start : m.start - first.start + m.size]
                if len(piece) == m.size:
                    out.ok[m.digest] = piece
                else:
                    out.failed[m.digest] = FileNotFoundError(f"pack {m.pack} is cut short")
        if not lost:
            return
        # gc may have repacked them since they were located: look once more
        moved = self.locate(namespace, [m.digest for m in lost]) if again else {}
        retry = [moved[m.digest] for m in lost if moved.get(m.digest, m) != m]
        for m in lost:
            if moved.get(m.digest, m) == m:
                out.failed[m.digest] = FileNotFoundError(f"pack {m.pack} is missing")
        if retry:
            self._read_packed(namespace, retry, out, again=False)


def spans(members: Sequence[Member]) -> list[list[Member]]:
    """Members in pack order, grouped into runs that one ranged read covers."""
    out: list[list[Member]] = []
    for m in sorted(members, key=lambda m: (m.pack, m.start)):
        if out:
            first, last = out[-1][0], out[-1][-1]
            if (
                m.pack == last.pack
                and m.start - (last.start + last.size) <= _GAP
                and m.start + m.size - first.start <= _SPAN_MAX
            ):
                out[-1].append(m)
                continue
        out.append([m])
    return out
