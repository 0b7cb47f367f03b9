"""A manifest made from another by a few changes, at the cost of the changes.

A draft (`ArtifactVersion.new_draft()`) keeps what it adds and removes in a small overlay;
logging it merges the overlay into the parent's manifest. For a format-3 parent only the
shards the changed paths fall in are read and cut again (cairn.manifest_shards says why
the rest come out byte for byte the same): a draft of 10 changes costs the same on a
version of a million files as on one of a thousand.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import Any

from ..foundation import manifest as _manifest
from ..foundation.errors import IntegrityError
from ..foundation.manifest import Manifest, ShardedManifest, build
from ..foundation.manifest_entry import DIR, Entry
from ..foundation.manifest_shards import Cutter, ShardRef, Spool, checked, spliced

_GONE = None  # a change that removes its path

Change = tuple[str, Entry | None]


def overlay(
    base: Manifest | None, puts: Iterable[Entry], removed: Collection[str] = ()
) -> Manifest:
    """`base` (None: nothing) with `puts` added or replacing entries and the paths in
    `removed` gone; a later put of the same path wins. DESIGN invariant 10 holds: a path
    that would be both a leaf and a folder is an IntegrityError, and an empty-folder entry
    that gets something in it is dropped."""
    ordered = sorted(puts, key=_path)  # stable: of entries of one path, the last put wins
    latest = (
        e for i, e in enumerate(ordered) if i + 1 == len(ordered) or ordered[i + 1].path != e.path
    )
    if base is None:  # a new artifact: streamed into shards as the entries come
        return build(latest)
    added = list(checked(latest))
    changes: dict[str, Entry | None] = dict.fromkeys(removed, _GONE)
    changes.update((e.path, e) for e in added)
    if not isinstance(base, ShardedManifest):
        kept = (e for p, e in base.items() if p not in changes)
        return build(sorted([*kept, *added], key=_path))
    base.prefetch(changes)  # the shards the changes fall in, in one request
    _reconcile(base, added, changes)
    merged = _merge(base, sorted(changes.items()))
    if len(merged) <= _manifest.SHARD_THRESHOLD:  # as small as a fresh log would write it
        return Manifest(list(merged.values()))
    return merged


def _reconcile(base: ShardedManifest, added: list[Entry], changes: dict[str, Entry | None]) -> None:
    """Check each added path against the base's: none may be a leaf there that the path is
    below, nor a folder there if it is a leaf (an empty-folder entry on either side goes)."""
    for e in added:
        if base.has_leaf(e.path):
            continue  # a leaf replaced by a leaf: nothing above is a leaf, nothing below
        parts = e.path.split("/")
        folder = "/".join(parts[:-1]) + "/"
        # the base has a path in the same folder (its shard is read for the merge anyway):
        # then no folder above is a leaf or an empty folder there (invariant 10 holds in
        # the base), and their shards need not be read
        if len(parts) > 1 and any(p.startswith(folder) for p in base.near(e.path)):
            parts = parts[-1:]
        for n in range(1, len(parts)):
            above = "/".join(parts[:n])
            if above in changes:
                continue  # removed, or added (the added paths were checked together)
            found = base.lookup(above)
            if found is None:
                continue
            if found.kind != DIR:
                raise IntegrityError(
                    f"path {above!r} is both a file and a folder of {e.path!r}; rename one"
                )
            changes[above] = _GONE  # an empty folder no more
        below = e.path + "/"
        for p in base.raw_keys_from(below):
            if not p.startswith(below):
                break
            if p in changes and changes[p] is _GONE:
                continue
            if e.kind == DIR:
                del changes[e.path]  # the folder has something in it already
                break
            raise IntegrityError(
                f"path {e.path!r} is both a file and a folder of {p!r}; rename one"
            )


def _merge(base: ShardedManifest, changes: list[Change]) -> ShardedManifest:
    """The base's shards, those the changes fall in cut again with them applied.

    Each base shard starts where a full cut of the base started one, with nothing waiting;
    so the cut is resumed at the first changed shard, and a base shard is taken over again
    once the changes are spent and the cutter is idle at a shard boundary. A shard whose
    changes only replace entries it has keeps its paths, so its cut: its bytes are edited
    instead (`spliced`), which encodes only the changed entries.
    """
    spool = Spool()
    out: list[ShardRef] = []

    def keep(ref: ShardRef, body: bytes) -> None:
        spool.put(ref.digest, body)
        out.append(ref)

    cutter = Cutter(keep)
    refs = base.shards
    c = 0
    for i, ref in enumerate(refs):
        final = i == len(refs) - 1
        spent = c == len(changes) or (not final and changes[c][0] > ref.last)
        if spent and not cutter.busy:
            out.append(ref)
            continue
        end = c
        while end < len(changes) and (final or changes[end][0] <= ref.last):
            end += 1
        edited = None if cutter.busy else _replaced(base.text(i), ref, changes[c:end])
        if edited is not None:
            keep(*edited)
        else:
            for path, data in _applied(base.raw(i), changes[c:end]):
                cutter.add_json(path, data)
        c = end
    cutter.finish()
    return ShardedManifest(tuple(out), load=base._load, spool=spool)


def _replaced(text: bytes, ref: ShardRef, changes: list[Change]) -> tuple[ShardRef, bytes] | None:
    """The shard with `changes` applied by editing its bytes (`spliced`), when each one
    replaces an entry it has: the paths stay, so the shard's cut does (a full cut starts
    one here, as the cutter is idle). None otherwise: the shard is cut again."""
    if any(put is None for _, put in changes):
        return None
    return spliced(text, ref, [(path, put.to_json()) for path, put in changes if put])


def _applied(entries: dict[str, Any], changes: list[Change]) -> Iterator[tuple[str, Any]]:
    """A shard's sorted entries (path -> JSON) with sorted `changes` applied, as JSON."""
    k = 0
    for path, data in entries.items():
        while k < len(changes) and changes[k][0] < path:
            put = changes[k][1]
            if put is not None:
                yield put.path, put.to_json()
            k += 1
        if k < len(changes) and changes[k][0] == path:
            put = changes[k][1]
            if put is not None:
                yield put.path, put.to_json()
            k += 1
            continue
        yield path, data
    for _, put in changes[k:]:
        if put is not None:
            yield put.path, put.to_json()


def _path(e: Entry) -> str:
    return e.path
