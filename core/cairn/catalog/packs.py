"""The pack index: which packed object is where (docs/FORMAT.md "Packs").

A row is added once its pack is durably in the store, so every row names bytes that
were there; gc deletes the rows of a pack before the pack, and moves the rows of the
objects it repacks in the transaction that makes the new pack the one to read.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import postgresql, sqlite

from .schema import pack_epochs, packed
from .sql import IN_LIST, delete_digests, insert_ignore

_STREAMED = 4096  # index rows fetched at a time by each_pack


@dataclass(frozen=True, slots=True)
class Member:
    """An object inside a pack: bytes [start, start + size) of pack `pack`."""

    digest: str
    pack: str
    start: int
    size: int


def lookup(conn: Connection, namespace: str, digests: Iterable[str]) -> dict[str, Member]:
    """Where each of `digests` that is packed in `namespace` is."""
    wanted = sorted(set(digests))
    out: dict[str, Member] = {}
    for i in range(0, len(wanted), IN_LIST):
        rows = conn.execute(
            select(packed.c.digest, packed.c.pack, packed.c.start, packed.c.size).where(
                packed.c.namespace == namespace, packed.c.digest.in_(wanted[i : i + IN_LIST])
            )
        )
        out.update((r.digest, Member(r.digest, r.pack, r.start, r.size)) for r in rows)
    return out


def split(conn: Connection, namespace: str, digests: Iterable[str]) -> tuple[set[str], set[str]]:
    """(the packs that hold those of `digests` packed in `namespace`, the ones not packed).

    One query with one bound parameter, whatever the number of digests, answered from
    the covering index `ix_packed_digest_pack` with a row per pack (a second one lists
    the loose digests, if there are any): an unchanged re-log of 10,000 packed files
    asks this, not where each of them is.
    """
    wanted = list(set(digests))
    if not wanted:
        return set(), set()
    param: list[str] | str
    if conn.dialect.name == "postgresql":
        values, param, table = "unnest(CAST(:digests AS text[])) AS w(value)", wanted, "packed p"
    else:  # SQLite: the digests outside, one search of the covering index each
        values, param = "json_each(:digests) AS w", _json_strings(wanted)
        table = "packed AS p INDEXED BY ix_packed_digest_pack"
    args = {"digests": param, "namespace": namespace}
    counts = conn.execute(
        text(
            f"SELECT p.pack, count(*) FROM {values} LEFT JOIN {table} "
            "ON p.namespace = :namespace AND p.digest = w.value GROUP BY p.pack"
        ),
        args,
    )
    holding = {r[0]: r[1] for r in counts}
    if None not in holding:
        return set(holding), set()
    del holding[None]
    loose = conn.execute(
        text(
            f"SELECT w.value FROM {values} WHERE NOT EXISTS (SELECT 1 FROM packed p "
            "WHERE p.namespace = :namespace AND p.digest = w.value)"
        ),
        args,
    )
    return set(holding), {r[0] for r in loose}


def _json_strings(values: list[str]) -> str:
    """A JSON array of strings; digests need no escaping, so most are joined directly
    (json.dumps of 10,000 digests costs a re-log several milliseconds)."""
    body = '","'.join(values)
    if body.count('"') != 2 * (len(values) - 1) or "\\" in body or not body.isascii():
        return json.dumps(values)
    return f'["{body}"]'


def record(conn: Connection, namespace: str, members: Sequence[Member]) -> None:
    """Index the members of a stored pack; a digest indexed already keeps its first place."""
    rows = [
        {
            "namespace": namespace,
            "digest": m.digest,
            "pack": m.pack,
            "start": m.start,
            "size": m.size,
        }
        for m in members
    ]
    insert_ignore(conn, packed, rows, ["namespace", "digest"])


def each_pack(conn: Connection) -> Iterator[tuple[tuple[str, str], list[Member]]]:
    """((namespace, pack), its indexed members in pack order), one pack at a time, for
    gc: the index of a million packed objects is read as a stream, never held whole."""
    rows = conn.execute(
        select(packed.c.namespace, packed.c.pack, packed.c.digest, packed.c.start, packed.c.size)
        .order_by(packed.c.namespace, packed.c.pack)
        .execution_options(yield_per=_STREAMED)
    )  # rows unpacked as tuples: a million read by attribute name cost seconds
    for where, group in itertools.groupby(rows, key=operator.itemgetter(0, 1)):
        members = [Member(digest, where[1], start, size) for _, _, digest, start, size in group]
        members.sort(key=operator.attrgetter("start"))
        yield where, members


def forget(conn: Connection, namespace: str, digests: Iterable[str]) -> None:
    """Drop the rows of `digests` in `namespace` (gc: their pack goes, or they moved)."""
    wanted = set(digests)
    if wanted:
        delete_digests(conn, packed, namespace, wanted)
        moved(conn, namespace)


def forget_packs(conn: Connection, namespace: str, names: Iterable[str]) -> None:
    """Drop the rows of every object indexed in the packs `names` of `namespace` (gc:
    the packs go, or their live objects moved), without listing the objects."""
    wanted = set(names)
    if wanted:
        delete_digests(conn, packed, namespace, wanted, by="pack")
        moved(conn, namespace)


def epoch(conn: Connection, namespace: str) -> int:
    """How many times an indexed object of `namespace` has changed place (0: never)."""
    # plain SQL: asked once by each re-log, in a new process, where compiling a
    # select() costs more than running it
    value = conn.execute(
        text("SELECT epoch FROM pack_epochs WHERE namespace = :namespace"),
        {"namespace": namespace},
    ).scalar()
    return int(value or 0)


def moved(conn: Connection, namespace: str) -> None:
    """Say that objects of `namespace` changed place: what any machine remembers about
    where they are is stale (`epoch` moves on)."""
    mod = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = mod.insert(pack_epochs).values(namespace=namespace, epoch=1)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["namespace"], set_={"epoch": pack_epochs.c.epoch + 1}
        )
    )


__all__ = [
    "Member",
    "each_pack",
    "epoch",
    "forget",
    "forget_packs",
    "lookup",
    "moved",
    "record",
    "split",
]
