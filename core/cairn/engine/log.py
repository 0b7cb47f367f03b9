"""Logging an artifact, one pipeline going down, a step per module:

scan the files (`scan`, a batch at a time) -> compare them with what the collection holds
(an unchanged re-log stops here: `objects.intact`) -> send what the store lacks (`transfer`,
under `staging`'s leases) -> stage the manifest (`staging.write_manifest`) -> commit the
version (`commit`, which cairn:// writes use too), then tell the listeners.

It takes the repository's parts (`staging.Writers`) and returns what it wrote
(`staging.Written`); the API turns that into a version handle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..catalog import access, records
from ..foundation.manifest import Entry, Manifest
from .artifact import Artifact, require_content
from .changes import track
from .objects import intact, where
from .scan import batches
from .staging import Writers, Written, write_manifest, writer
from .statcache import StatCache
from .transfer import UploadStats


def log(
    repo: Writers, art: Artifact, *, project: str, aliases: Sequence[str], run_id: str | None
) -> Written:
    """Store `art`'s new bytes and commit it as the collection's next version, or find the
    committed version that holds this content already (`aliases` set on either)."""
    require_content(art)
    with repo.catalog.write() as conn:
        access.require(conn, project, "write")
        coll = records.collection(conn, project, art.name, type=art.type, create=True)
        namespace = records.namespace(conn, coll.project_id)
    found = unchanged(repo, art, project, aliases, run_id)
    if found is not None:
        return found
    with writer(repo, art, namespace=namespace) as w:
        manifest = art.stream(w.files())
        staged = w.finish()
        write_manifest(repo, staged, manifest)
        committed = commit(
            repo,
            art,
            manifest,
            project=project,
            namespace=namespace,
            run_id=run_id,
            aliases=aliases,
        )
        assert committed is not None  # no `after`: nothing to be outrun by
        version_id, created = committed
    if not manifest.inherited():  # a draft's cost stays that of its changes
        _remember(repo, namespace, manifest)
    return Written(version_id, staged.stats, created=created)


#: `commit(after=ANY)`: whatever the collection's latest is
ANY: Any = object()


def commit(
    repo: Writers,
    art: Artifact,
    manifest: Manifest,
    *,
    project: str,
    namespace: str,
    run_id: str | None,
    aliases: Sequence[str] = (),
    after: int | None = ANY,
    reuse_identical: bool = True,
) -> tuple[int, bool] | None:
    """Commit the staged `manifest` as the next version of `art`'s collection, with
    `art`'s description and metadata and `aliases`, and tell the listeners once it is
    committed: (version id, whether it is new; `reuse_identical` returns the committed
    version with this content instead of a new one).

    `after`: the id of the version the collection's latest must still be (None: it has
    none yet), checked under the collection's lock; if another writer committed since,
    nothing is committed and None is returned, for the caller to rebuild and retry."""
    changes = track(repo.listeners, run=run_id)
    with repo.catalog.write() as conn:
        # shared GC guard: gc must not see the manifest row without its version
        repo.catalog.gc_guard(conn, exclusive=False)
        coll = records.collection(conn, project, art.name, type=art.type)
        if after is not ANY and records.latest_id(conn, coll.id, lock=True) != after:
            return None
        changes.watch(conn, coll.id)
        records.save_manifest(conn, manifest, coll.project_id)
        version_id, created = records.commit(
            conn,
            coll,
            manifest,
            description=art.description,
            metadata=art.metadata,
            run_id=run_id,
            namespace=namespace,
            reuse_identical=reuse_identical,
        )
        for a in aliases:
            records.set_alias(conn, coll.id, a, version_id)
        if created:
            changes.committed(version_id)
        events = changes.events(conn)
    repo.listeners.emit(events)  # committed: a failing listener cannot undo it
    return version_id, created


def unchanged(
    repo: Writers, art: Artifact, project: str, aliases: Sequence[str], run_id: str | None
) -> Written | None:
    """The committed version `art` would return, when the stat cache knows every file
    and the store still holds every object it needs intact.

    Logging unchanged files again then costs a stat per file and one batched existence
    check (a key per pack, however many objects it holds, and one per loose object): no
    file is read and no object leased, since a committed version's objects stay in the
    store while it does. A missing or damaged object sends the log the long way, which
    stores it again. Aliases are set in a transaction that finds the version again, so a
    concurrent delete cannot slip in between. The files are scanned a batch at a time;
    the first the stat cache does not know ends the search.
    """
    counted = [0]
    try:
        manifest = art.stream(_known(art, repo.statcache, counted))
    except _NotKnown:
        return None
    stats = UploadStats(files=counted[0])
    with repo.catalog.read() as conn:
        coll = records.collection(conn, project, art.name, type=art.type)
        row = records.committed_with_digest(conn, coll.id, manifest.digest)
        if row is None or not _intact(repo, conn, row.namespace, manifest):
            return None
        if not aliases:
            held = records.aliases_of(conn, [row.id])[row.id]
            return Written(row.id, stats, created=False, found=(row, held))
    changes = track(repo.listeners, run=run_id)
    with repo.catalog.write() as conn:
        row = records.committed_with_digest(conn, coll.id, manifest.digest)
        if row is None:
            return None
        changes.watch(conn, coll.id)
        for a in aliases:
            records.set_alias(conn, coll.id, a, row.id)
        held = records.aliases_of(conn, [row.id])[row.id]
        events = changes.events(conn)
    repo.listeners.emit(events)
    return Written(row.id, stats, created=False, found=(row, held))


def _intact(repo: Writers, conn: Any, namespace: str, manifest: Manifest) -> bool:
    """Whether `namespace` holds every object of `manifest` intact (what this machine
    remembers of where they are spares the pack index its searches)."""
    places = repo.statcache.places
    known = places.get(repo.store.url, namespace, manifest.digest)
    layout = intact(repo.store, conn, namespace, manifest.each_object(), remembered=known)
    if layout is not None and layout != known:
        places.put(repo.store.url, namespace, manifest.digest, layout)
    return layout is not None


def _remember(repo: Writers, namespace: str, manifest: Manifest) -> None:
    """Note where a version just logged keeps its objects: the next unchanged re-log
    then checks them without searching the pack index."""
    with repo.catalog.read() as conn:
        layout = where(conn, namespace, manifest.each_object())
    repo.statcache.places.put(repo.store.url, namespace, manifest.digest, layout)


class _NotKnown(Exception):
    """A file the stat cache does not know: the log must read it."""


def _known(art: Artifact, statcache: StatCache, counted: list[int]) -> Iterator[Entry]:
    """The entries of the artifact's local files as the stat cache knows them, in path
    order, scanned a batch at a time; _NotKnown at the first batch holding a file it
    does not know (counted[0]: the files scanned)."""
    for scanned in batches(art.files(), statcache):
        known = scanned.entries()
        if known is None:
            raise _NotKnown
        counted[0] += len(known)
        yield from known
