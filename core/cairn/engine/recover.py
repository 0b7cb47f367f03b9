"""Rebuilding a catalog from the store alone, and checking a catalog against the store.

The store log (cairn/storelog) says what the catalog holds; `recover` writes it into an
empty catalog (or reconciles the catalog it came from), `verify_catalog` lists every
difference between the two. Manifests come from the log (small ones ride in their
version's record) or the store's manifest objects, the pack index from the packs' own
indexes (docs/FORMAT.md "Packs"). One catalog transaction: a recover killed midway leaves
the catalog as it was, and running it again finishes the work.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from ..catalog import Catalog
from ..catalog import identity as catalog_identity
from ..catalog.dump import dump
from ..catalog.packs import Member
from ..catalog.packs import record as record_packs
from ..catalog.restore import ORDER, Restorer
from ..foundation.errors import CairnError, IntegrityError
from ..foundation.layout import PACKS, digest_of_pack_key, manifest_key, namespace_prefix
from ..foundation.manifest import stored_document
from ..foundation.manifest_shards import ShardRef, decode, read_shard
from ..foundation.sizes import counted
from ..storage import Store
from .storeconfig import StoreConfig, new_repository_id, read_config, write_config
from .storelog import read
from .storelog.reader import namespaces
from .storelog.state import State

_TRAILER = struct.Struct(">Q8s")


@dataclass(frozen=True)
class CatalogReport:
    """What `verify --catalog` found: one line per difference between catalog and log."""

    differences: tuple[str, ...]
    reconciled: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences

    def __str__(self) -> str:
        if self.ok:
            done = (
                f"; applied {self.reconciled} change(s) from the store log"
                if self.reconciled
                else ""
            )
            return f"catalog and store log agree{done}"
        head = f"{len(self.differences)} difference(s) between the catalog and the store log"
        if self.reconciled:
            head += f" after applying {self.reconciled} change(s) from the log"
        return "\n".join([head + ":", *self.differences])


@dataclass(frozen=True)
class RecoverReport:
    """What `recover` put into the catalog."""

    projects: int
    collections: int
    versions: int
    aliases: int
    runs: int
    packed: int
    #: True when the catalog already held this repository and was reconciled instead
    reconciled: bool = False
    #: versions whose manifest the store no longer has (readable by nothing)
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        verb = "reconciled" if self.reconciled else "recovered"
        text = (
            f"{verb} {counted(self.projects, 'project')}, "
            f"{counted(self.collections, 'collection')}, {counted(self.versions, 'version')}, "
            f"{counted(self.aliases, 'alias', 'aliases')}, {counted(self.runs, 'run')}; "
            f"{counted(self.packed, 'packed object')} indexed"
        )
        return "\n".join([text, *self.problems])


def store_state(store: Store) -> State:
    return read(store).state()


def verify_catalog(store: Store, catalog: Catalog, *, reconcile: bool = False) -> CatalogReport:
    """Compare the catalog with the store log; with `reconcile`, apply the log's side."""
    state = store_state(store)
    rows = state.rows()
    applied = 0
    if reconcile:
        with catalog.write(record=False) as conn:
            applied = _apply(store, conn, state, rows, dump(conn))
    with catalog.read() as conn:
        found = dump(conn)
    return CatalogReport(tuple(differences(found, rows)), applied)


def recover(store: Store, catalog: Catalog) -> RecoverReport:
    """Rebuild `catalog` from `store`: into an empty catalog, or reconciling the one this
    store's log describes; any other catalog is refused."""
    state = store_state(store)
    rows = state.rows()
    problems: list[str] = []
    config = read_config(store)
    store_id = config.id if config is not None else None
    adopted = None
    # the binding itself: no identity check before it (cairn.identity), and nothing to
    # record (the log is where these rows come from)
    with catalog.write(check=False, record=False) as conn:
        bound = catalog_identity.load(conn)
        found = dump(conn)
        other = bound.id is not None and bound.id != store_id
        if other or (bound.id is None and found and not same_repository(found, rows)):
            whose = f"repository {bound.id}" if bound.id else "another repository"
            raise CairnError(
                f"catalog {catalog.display_url()} is not empty and belongs to {whose}, not "
                f"to the store's ({store_id or 'no id yet'}); recover into an empty catalog "
                "(--into URL)"
            )
        _apply(store, conn, state, rows, found, problems=problems)
        packed = 0 if found else _index_packs(store, conn, rows)
        if bound.id is None:
            # the rebuilt catalog is the store's: bound to its id (a store from before
            # ids gets one, stamped once the rows are committed)
            adopted = store_id or new_repository_id()
            catalog_identity.bind(conn, adopted, store.url)
    if adopted is not None:
        if store_id is None:
            write_config(store, (config or StoreConfig()).with_id(adopted))
        with catalog.write(check=False, record=False) as conn:
            catalog_identity.settle(conn, adopted)
    count = {kind: sum(1 for k in rows if k.startswith(kind + ":")) for kind in ORDER}
    return RecoverReport(
        projects=count["project"],
        collections=count["collection"],
        versions=count["version"],
        aliases=count["alias"],
        runs=count["run"],
        packed=packed,
        reconciled=bool(found),
        problems=tuple(problems),
    )


def same_repository(found: dict[str, Any], rows: dict[str, Any]) -> bool:
    """Does a non-empty catalog describe this store (a version or project in common)?"""
    for key, item in found.items():
        if key.startswith("version:") and rows.get(key, {}).get("digest") == item["digest"]:
            return True
        if key.startswith("project:") and rows.get(key, {}).get("created_at") == item["created_at"]:
            return True
    return False


def differences(catalog: dict[str, Any], log: dict[str, Any]) -> list[str]:
    """One line per item or field on which the catalog and the store log disagree."""
    out: list[str] = []
    for key in sorted(catalog.keys() | log.keys()):
        label = describe(key)
        if key not in catalog:
            out.append(f"{label}: in the store log, not in the catalog")
        elif key not in log:
            out.append(f"{label}: in the catalog, not in the store log")
        else:
            mine, theirs = catalog[key], log[key]
            for field in sorted(mine.keys() | theirs.keys()):
                if mine.get(field) != theirs.get(field):
                    out.append(
                        f"{label}: {field} is {_show(mine.get(field))} in the catalog, "
                        f"{_show(theirs.get(field))} in the store log"
                    )
    return out


def describe(key: str) -> str:
    kind, _, rest = key.partition(":")
    if kind == "version":
        collection, _, index = rest.rpartition(":")
        return f"version {collection}:v{index}"
    if kind == "usage":
        run, _, version = rest.partition("|")
        collection, _, index = version.rpartition(":")
        return f"run {run} used {collection}:v{index}"
    return f"{kind} {rest}"


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _apply(
    store: Store,
    conn: Any,
    state: State,
    rows: dict[str, Any],
    found: dict[str, Any],
    *,
    problems: list[str] | None = None,
) -> int:
    """Write every item the catalog lacks or holds otherwise; returns how many."""
    restorer = Restorer(conn)
    changed = [k for k in rows if found.get(k) != rows[k]]
    changed.sort(key=lambda k: (ORDER.index(k.partition(":")[0]), k))
    for key in changed:
        restorer.put(key, rows[key])
    restorer.flush()
    # aliases the log removed (or whose version it deleted) and policies it removed, that
    # the catalog still has
    stale = [k for k in found if k.startswith(("alias:", "policy:")) and k not in rows]
    for key in stale:
        if key.startswith("alias:"):
            restorer.remove_alias(key)
        else:
            restorer.remove_policy(key)
    wanted = [k for k in changed if k.startswith("version:") and rows[k]["state"] == "COMMITTED"]
    restorer.save_manifests(_manifests(store, state, rows, wanted, problems))
    return len(changed) + len(stale)


ManifestRow = tuple[str, str, bytes, int, int]  # project, digest, compressed body, size, files


def _manifests(
    store: Store, state: State, rows: dict[str, Any], keys: list[str], problems: list[str] | None
) -> list[ManifestRow]:
    """Each version's manifest row, from the log where it rides along, else the store; and
    a format-3 manifest's shard rows, from the store."""
    bodies: dict[str, bytes] = {}
    fetch: dict[str, str] = {}
    for key in keys:
        inline = state.items[key].get("_manifest")
        if inline is not None:
            bodies[key] = base64.b64decode(inline)
        else:
            item = rows[key]
            fetch[manifest_key(item["digest"], namespace=item["namespace"])] = key
    got = store.get_many(fetch)
    for object_key, key in fetch.items():
        data = got.ok.get(object_key)
        bodies[key] = data if data is not None else b""
    out: list[ManifestRow] = []
    for key, body in bodies.items():
        item = rows[key]
        digest = item["digest"]
        try:
            if not body:
                raise got.failed[manifest_key(digest, namespace=item["namespace"])]
            compressed, refs = stored_document(body, expect_digest=digest)
            shards = _shard_rows(store, item, refs)
        except (FileNotFoundError, IntegrityError) as exc:
            note = f"{describe(key)}: manifest {digest} unreadable ({exc})"
            if problems is None:
                raise CairnError(note) from exc
            problems.append(note)
            continue
        out += shards
        out.append((item["project"], digest, compressed, item["size"], item["file_count"]))
    return out


def _shard_rows(
    store: Store, item: dict[str, Any], refs: tuple[ShardRef, ...]
) -> list[ManifestRow]:
    """The rows of a format-3 manifest's shards, read from the version's namespace and
    checked against the root, a batch at a time."""
    out: list[ManifestRow] = []
    for i in range(0, len(refs), _SHARD_BATCH):
        batch = {
            manifest_key(r.digest, namespace=item["namespace"]): r
            for r in refs[i : i + _SHARD_BATCH]
        }
        got = store.get_many(batch)
        for key, ref in batch.items():
            data = got.ok.get(key)
            if data is None:
                raise got.failed[key]
            text = decode(data, expect_digest=ref.digest, limit=ref.bytes)
            read_shard(text, ref)
            out.append((item["project"], ref.digest, zlib.compress(text, 6), ref.size, ref.files))
    return out


#: shards read from the store per batch
_SHARD_BATCH = 64


def _index_packs(store: Store, conn: Any, rows: dict[str, Any]) -> int:
    """Rebuild the pack index from each pack's own index (docs/FORMAT.md "Packs")."""
    spaces = set(namespaces(store)) | {
        r["namespace"] for k, r in rows.items() if k.startswith("version:")
    }
    total = 0
    for namespace in sorted(spaces):
        for info in store.list(namespace_prefix(namespace) + PACKS):
            found = digest_of_pack_key(info.key)
            if found is None or found[0] != namespace or info.size < _TRAILER.size:
                continue
            tail = store.get_range(info.key, info.size - _TRAILER.size, info.size)
            length, magic = _TRAILER.unpack(tail)
            if magic != b"CAIRNPK1" or length > info.size - _TRAILER.size:
                continue  # not a whole pack: verify reports its objects
            end = info.size - _TRAILER.size
            body = json.loads(store.get_range(info.key, end - length, end))
            members = [Member(d, found[1], start, size) for d, start, size in body["objects"]]
            record_packs(conn, namespace, members)
            total += len(members)
    return total
