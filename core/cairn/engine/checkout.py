"""Checkouts: a version's files placed in a local folder, without surprises.

Into an empty or new folder the version is written. A folder holding a previous checkout
of the same collection (its marker says so, cairn.marker) is updated in place, like
`git checkout`: what the version no longer has is removed if unmodified. Local edits,
files cairn did not make and links stop the get with one error naming them, unless
`force` (then the version's paths win and unrelated files are kept). The whole folder is
checked before anything in it changes (cairn.engine.checkout_plan).

Every path is reached through cairn.confined, never through a link, so nothing is
written outside the folder. Each file gets its name only once whole (cairn.confined),
after a marker listing what is about to be written: an interrupted get leaves each path
with its old content, its new content or nothing, and a re-run completes it. Files are
written by WRITERS threads, a part of one folder each, through that folder's own
descriptor; a version of many small files by helper processes instead (cairn.engine.helpers:
one interpreter's lock would hold the loop to one core), a batch written while the next
is fetched, so that it costs about what `cp -r` of them costs. Files are
copy-on-write clones of the cache where the file system can, hardlinks only when asked
(`link`), else copies: a checkout is never a writable alias of the cache.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from itertools import chain, islice

import blake3

from ..foundation.errors import CairnError, Conflict
from ..foundation.manifest import FILE, LINK, Entry, Manifest
from . import helpers
from .cache import Cache
from .checkout_plan import Cursor, Found, Load, Plan, Target, folders_of, hash_into
from .confined import ConfinedDir, Pinned
from .download import cache_key
from .marker import MARKER, RACY_NS, Marker, Spool, Written, write_all
from .smallfiles import Copier

#: entries -> cache_key(entry) -> local path of verified content (Downloader.ensure)
Fetch = Callable[[list[Entry]], dict[str, str]]
_TICK_NS = 5_000_000  # how far file stamps (a coarse clock) may lag time.time_ns()
_RACES = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENOTEMPTY, errno.EEXIST}
# files are written by this many threads, each a part of one folder at a time: creating
# a file is mostly the kernel's work (the GIL is let go), and folders do not share locks.
# One more than the cores: every system call lets the GIL go and takes it back, so more
# threads than that spend their time handing it over (futex calls: 36 per file with 8
# threads on 2 cores, against 0.5 with 2)
WRITERS = min(8, (os.cpu_count() or 2) + 1)
_PART = 256  # files per task
_SERIAL = 64  # fewer files than this are written by the calling thread alone
BATCH = 8192  # entries fetched, written and recorded at a time: what a get holds
# files up to this size are written as unnamed files, then linked in (cairn.confined)
SMALL = 1 << 20
# versions of at least this many files to write start helper processes (cairn.helpers)
HELPED = 2048


def reserved(manifest: Manifest) -> None:
    """Refuse a version that holds the marker's name at its top: it could not be told
    apart from cairn's own record of the checkout."""
    if MARKER in manifest:
        raise CairnError(
            f"the version has a file named {MARKER} at its top, the name cairn keeps for its "
            "checkout marker; read it with get_path() or cairn:// instead"
        )


def checkout(
    target: Target,
    manifest: Manifest,
    folder: ConfinedDir,
    *,
    fetch: Fetch,
    cache: Cache,
    load: Load,
    force: bool = False,
    link: bool = False,
) -> None:
    """Make `folder` hold `target`'s entries (module docstring for the rules)."""
    reserved(manifest)
    folder.lock()
    try:
        found = Found(target, manifest, folder, cache=cache, load=load, link=link)
        try:
            plan = found.plan()
            try:
                if plan.problems and not force:
                    raise found.refusal(plan.problems)
                _Checkout(found, link=link).apply(plan, fetch)
            finally:
                plan.close()
        finally:
            found.close()
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        # a path vanishing or changing kind under the get: another process at work there
        raced = exc.errno in _RACES
        hint = " (did something else change the folder meanwhile?)" if raced else ""
        raise Conflict(
            f"cannot check out {target.ref} into {folder.path}: {exc.strerror}{where}{hint}"
        ) from exc


class _Checkout:
    """Carry out a plan: a batch of entries at a time, fetched, written, recorded."""

    def __init__(self, found: Found, *, link: bool):
        self.found = found
        self.target, self.manifest, self.folder = found.target, found.manifest, found.folder
        self.marker, self.cache, self.link = found.marker, found.cache, link
        self._copier = Copier()  # clone, else copy_file_range, ...: what the disk can
        self._helpers: helpers.Helpers | None = None

    def apply(self, plan: Plan, fetch: Fetch) -> None:
        # a batch of entries at a time: fetched, then written, then recorded in the
        # marker-to-be, so what a get holds is bounded however many files the version
        # has; the first batch, all of a version of up to BATCH entries, is fetched
        # before the folder changes
        batches = _batched(self.manifest.stream(), BATCH)
        kept = Cursor(plan.kept.records())  # in step with the batches
        first = next(batches, ())
        first_kept = _kept_of(first, kept)
        sources = _fetch(fetch, self._to_write(first, first_kept))
        changes = self.manifest.file_count > len(plan.kept) or plan.remove
        if changes or not (self.marker and self.marker.complete):
            # first: a re-run after an interruption knows what this get may have written
            self._write_marker(self._under_way())
        for path in sorted(plan.remove, key=lambda p: -p.count("/")):
            self.folder.remove(path)
        every = chain([first], batches) if first else iter(())
        del first  # a batch is let go once written
        many = self.manifest.file_count - len(plan.kept) >= HELPED and not self.link
        with Spool(self.cache.root) as record, self._writers(many) as placing:
            made: set[str] = set()
            newest = 0
            # batch i is written (`placing`) while batch i+1 is read and fetched here
            pending: _Pending | None = None
            try:
                for i, batch in enumerate(every):
                    here = first_kept if not i else _kept_of(batch, kept)
                    files = self._to_write(batch, here)
                    if i:
                        sources = _fetch(fetch, files)
                    for d in sorted(folders_of(batch) - made):
                        self.folder.mkdir(d)
                        made.add(d)
                    placed = placing.submit(self._place_all, files, sources)
                    sources = {}
                    if pending is not None:
                        newest = max(newest, self._finish(*pending, record))
                    pending = (batch, here, placed)
                if pending is not None:
                    newest = max(newest, self._finish(*pending, record))
                    pending = None
            finally:
                if pending is not None:  # failed: the batch being written ends first
                    wait([pending[2]])
            self._prune(plan)
            if newest:
                # the marker a tick later than the newest file, so a later get trusts
                # its stamp instead of reading the file again (marker.RACY_NS)
                time.sleep(max(0, newest + RACY_NS + _TICK_NS - time.time_ns()) / 1e9)
            self._write_marker(self._done(), record, stamped_after=newest + RACY_NS)

    def _finish(
        self,
        batch: list[Entry],
        kept: dict[str, Written],
        placed: Future[dict[str, Written]],
        record: Spool,
    ) -> int:
        """Once `batch`'s files are written: its links made, all of it recorded; return
        the newest stamp among its files. `kept`: the batch's paths kept as they are."""
        written = placed.result()
        for e in batch:
            if e.kind == LINK and e.path not in kept:
                assert e.target is not None
                self.folder.symlink(e.path, e.target)
        record.add(self._records(batch, written, kept))
        return max([0, *(w.mtime_ns or 0 for w in written.values())])

    @contextlib.contextmanager
    def _writers(self, many: bool) -> Iterator[ThreadPoolExecutor]:
        """The thread that writes batches, and the helper processes that write many
        small files (cairn.engine.helpers), for as long as the get runs."""
        placing = ThreadPoolExecutor(1)
        self._helpers = _start_helpers() if many else None
        try:
            yield placing
        finally:
            placing.shutdown(wait=True, cancel_futures=True)
            if self._helpers is not None:
                self._helpers.close()
                self._helpers = None

    def _to_write(self, batch: Sequence[Entry], kept: dict[str, Written]) -> list[Entry]:
        return [e for e in batch if e.kind == FILE and e.path not in kept]

    def _records(
        self, batch: Sequence[Entry], written: dict[str, Written], kept: dict[str, Written]
    ) -> Iterator[tuple[str, Written]]:
        """The marker's record of each entry of `batch`, as placed."""
        for e in batch:
            if e.kind == FILE:
                yield e.path, written.get(e.path) or kept[e.path]
            else:
                yield e.path, Written(e.kind, target=e.target)

    def _under_way(self) -> Marker:
        """The marker while this get runs: what was there stays recorded, and this
        version's entries may be on disk, besides what an interrupted get may have left."""
        t, old = self.target, self.marker
        versions = (*(old.incoming_versions if old else ()), t.digest)
        return Marker(
            ref=t.ref,
            project=t.project,
            collection=t.collection,
            version=t.version,
            digest=t.digest,
            complete=False,
            entries=old.entries if old else {},  # shared: neither marker changes it
            incoming=dict(old.incoming) if old else {},
            incoming_versions=tuple(dict.fromkeys(versions)),
            stored=old.stored if old else None,  # copied from the marker's file
        )

    def _done(self) -> Marker:
        """The marker once every entry is in place (its entries come from the get)."""
        t = self.target
        return Marker(t.ref, t.project, t.collection, t.version, t.digest, True, entries={})

    def _place_all(self, entries: list[Entry], sources: dict[str, str]) -> dict[str, Written]:
        """Place every file, in parts of one folder each, by WRITERS threads at once."""
        by_folder: dict[str, list[Entry]] = {}
        for e in entries:
            by_folder.setdefault(e.path.rpartition("/")[0], []).append(e)
        parts = [
            (rel, group[i : i + _PART])
            for rel, group in by_folder.items()
            for i in range(0, len(group), _PART)
        ]

        def place(rel: str, part: list[Entry]) -> list[tuple[str, Written]]:
            with self.folder.pin(rel) as pinned:
                if self.link:
                    return [(e.path, self._place(pinned, e, sources[cache_key(e)])) for e in part]
                # small content-addressed files in one loop (Pinned.copy_small), the rest
                # one by one
                small = [e for e in part if e.size <= SMALL and e.digest]
                stamps = pinned.copy_small(
                    [(e.path.rpartition("/")[2], sources[e.digest], e.size) for e in small],  # type: ignore[index]
                    self._copier,
                    self._helpers,
                )
                out = [
                    (e.path, Written(FILE, e.digest, size, mtime_ns=mtime, ino=ino))
                    for e, (size, mtime, ino) in zip(small, stamps, strict=True)
                ]
                if len(small) < len(part):
                    rest = (e for e in part if not (e.size <= SMALL and e.digest))
                    out += [(e.path, self._place(pinned, e, sources[cache_key(e)])) for e in rest]
                return out

        written: dict[str, Written] = {}
        if len(entries) < _SERIAL:
            for rel, part in parts:
                written.update(place(rel, part))
            return written
        # with helpers, a thread per helper: each waits on its helper, the GIL let go
        pool = ThreadPoolExecutor(len(self._helpers) if self._helpers else WRITERS)
        try:
            pending = deque(pool.submit(place, rel, part) for rel, part in parts)
            while pending:  # each part's list let go once merged
                written.update(pending.popleft().result())
        finally:
            # a failure stops the parts not started; the others finish before it is raised
            pool.shutdown(wait=True, cancel_futures=True)
        return written

    def _place(self, pinned: Pinned, e: Entry, source: str) -> Written:
        """Put the cached file `source` at e.path: a hardlink if asked, else a clone or copy."""
        digest = e.digest or _digest_of(source)
        name = e.path.rpartition("/")[2]
        if self.link:
            try:
                return _stamped(pinned.hardlink(name, source), digest)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                    raise
        src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = pinned.write(
                name, lambda dst: self._copier.copy(src, dst, e.size), small=e.size <= SMALL
            )
            return _stamped(st, digest)
        finally:
            os.close(src)

    def _prune(self, plan: Plan) -> None:
        """Remove folders cairn made for paths the version no longer has, once empty."""
        for d in sorted(plan.strays, key=lambda p: -p.count("/")):
            if self.found.made_by_cairn(d):
                self.folder.rmdir(d)

    def _write_marker(
        self, marker: Marker, entries: Spool | None = None, *, stamped_after: int = 0
    ) -> None:
        """Write `marker`, its entries taken from `entries` if given, with a modification
        time later than `stamped_after` (what a later get trusts file stamps against)."""
        head, tail = marker.frame()

        def fill(fd: int) -> None:
            write_all(fd, head.encode())
            if entries is not None:
                entries.copy_to(fd)
            else:  # a block at a time: the marker before may list a million paths
                for block in marker.entry_blocks():
                    write_all(fd, block)
            write_all(fd, tail.encode())
            # file stamps come from a coarse clock that may lag time.time_ns() by more than
            # a tick on a busy machine: the stamp is checked, and moved on until it is late
            # enough, rather than assumed
            while os.fstat(fd).st_mtime_ns <= stamped_after:
                time.sleep(_TICK_NS / 1e9)
                os.utime(fd)
            os.fsync(fd)

        self.folder.write(MARKER, fill)
        self.folder.fsync()


def _start_helpers() -> helpers.Helpers | None:
    """Helper processes, or None where they cannot run or do not start (a Python that
    cannot be started again, say): the get's own threads write the files then."""
    if not helpers.available():
        return None
    try:
        return helpers.Helpers()
    except OSError:
        return None


#: a batch being written: its entries, those of them kept, the files' records once written
_Pending = tuple[list[Entry], dict[str, Written], Future[dict[str, Written]]]


def _kept_of(batch: Sequence[Entry], kept: Cursor[Written]) -> dict[str, Written]:
    """The plan's records of the paths of `batch` it keeps (batches come in path order)."""
    return {e.path: w for e in batch if (w := kept.at(e.path)) is not None}


def _batched(entries: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    while batch := list(islice(entries, size)):
        yield batch


def _fetch(fetch: Fetch, entries: list[Entry]) -> dict[str, str]:
    """`fetch` of each content once."""
    return fetch(list({cache_key(e): e for e in entries}.values()))


def _stamped(st: os.stat_result, digest: str | None) -> Written:
    return Written(FILE, digest, st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino)


def _digest_of(path: str) -> str:
    h = blake3.blake3()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        hash_into(h, fd)
    finally:
        os.close(fd)
    return h.hexdigest()
