"""Hash-and-store of local files: one read pass, only missing objects sent.

The uploader never decides on its own that an object may be skipped: it asks `protect`
(the repository's lease keeper) which records the digests under the writer's lease and
answers which already exist, so GC cannot delete them before the version commits.
Everything happens in one store namespace: existence is asked and objects are sent
there only (docs/ACCESS.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import blake3

from ..catalog.packs import Member
from ..foundation.chunking import ChunkingParams, FileChunker, Window, digest
from ..foundation.errors import CairnError, IntegrityError
from ..foundation.layout import object_key, pack_key
from ..foundation.manifest import Chunk, Entry
from ..storage import Store
from .objects import MEMBER_MAX, PACK_BYTES, PACK_MIN, Objects, groups
from .objects import build as build_pack
from .progress import NoProgress, Progress
from .scan import Scan, scan
from .statcache import Known, Stamp, StatCache

Protect = Callable[[list[str]], set[str]]


class PackIndex(Protocol):
    """Where the uploader's packs are recorded (the catalog, under the writer's lease)."""

    def lease(self, digests: list[str]) -> None:
        """Protect digests from gc without asking whether they exist (a pack about to go)."""

    def record(self, members: list[Member]) -> None:
        """Index the members of a pack that is durably stored."""


# small files are hashed, existence-checked and sent by batch (bounded by bytes too): one
# existence check of thousands of keys is one listing per store folder, not a request per key
_SMALL_BATCH_FILES = 16384
_SMALL_BATCH_BYTES = 64 << 20
# each background task sends one slice of a batch with a single put_many
#: small objects wait, across a log's batches, until this much has come, then go as
#: packs: a quarter of a full pack (`objects.PACK_BYTES`), so what a log of many small
#: files holds while they wait (their bytes, the pack being built, the pack being sent)
#: stays a few MiB however many files it logs
WAIT_BYTES = PACK_BYTES // 4
_SLICE_OBJECTS = 64
_SLICE_BYTES = 16 << 20
# bytes read but not yet stored that the uploader may hold before hashing waits
_INFLIGHT_BYTES = 256 << 20
# objects copied from another namespace are read this many at a time (each up to 8 MiB;
# packed ones up to MEMBER_MAX, read by ranges of their packs)
_COPY_SLICE = 8
_COPY_PACKED = 1024


@dataclass
class UploadStats:
    """What a log cost: files read, bytes read, objects and bytes actually sent."""

    files: int = 0
    files_hashed: int = 0
    bytes_hashed: int = 0
    objects_sent: int = 0
    bytes_sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self, nbytes: int) -> None:
        with self._lock:
            self.objects_sent += 1
            self.bytes_sent += nbytes


class Uploader:
    def __init__(
        self,
        store: Store,
        *,
        namespace: str,
        params: ChunkingParams,
        protect: Protect,
        statcache: StatCache | None = None,
        progress: Progress | None = None,
        concurrency: int | None = None,
        packs: PackIndex | None = None,
        objects: Objects | None = None,
        watch: set[str] | None = None,
    ):
        self.store = store
        self.namespace = namespace
        self.params = params
        self.protect = protect
        #: where packs of many small objects are indexed; None: every object goes loose
        self.packs = packs
        self.objects = objects or Objects(store, None)
        self.statcache = statcache
        self.progress = progress or NoProgress()
        self.stats = UploadStats()
        #: digests of the objects this uploader has stored (durable after `flush`): all of
        #: them, or with `watch` (a set its owner may fill while this uploader runs) those
        #: in it only, so a log of a million files does not keep a million digests
        self.stored: set[str] = set()
        self._watch = watch
        self._stored_lock = threading.Lock()
        #: small objects to send, waiting for a pack's worth (`_send`)
        self._pending: dict[str, bytes | memoryview] = {}
        self._pending_bytes = 0
        self._chunker = FileChunker(params)
        self._pool = ThreadPoolExecutor(concurrency or store.concurrency)
        # reads get threads of their own: never queued behind the uploads of a batch
        self._readers = ThreadPoolExecutor(4)
        # chunk digests run on every core (BLAKE3 releases the GIL); a large file's whole
        # digest on a thread of its own, one window after the other
        self._hash_threads = os.cpu_count() or 2
        self._hashers = ThreadPoolExecutor(self._hash_threads)
        self._whole = ThreadPoolExecutor(1)
        # leases a large file's windows and hands their chunks to the store threads, so
        # the reading thread only reads and cuts
        self._dispatcher = ThreadPoolExecutor(1)
        #: set by any stage or put that failed: reading stops at the next window
        self._failed = threading.Event()
        self._inflight = _Budget(_INFLIGHT_BYTES)
        self._futures: list[Future[None]] = []

    # -- public --------------------------------------------------------------------------

    def ingest(self, files: Iterable[tuple[str, str]] | Scan) -> list[Entry]:
        """Store local files; `files` is (logical path, local path), or a scan of them.

        Returns their entries, in order.
        """
        scanned = files if isinstance(files, Scan) else scan(files, self.statcache)
        out = list(self.stream([scanned], scanned.bytes))
        self.flush()
        return out

    @property
    def reports_progress(self) -> bool:
        """Whether a front end draws this uploader's progress."""
        return not isinstance(self.progress, NoProgress)

    def stream(self, scans: Iterable[Scan], total: int) -> Iterator[Entry]:
        """Store local files scanned in batches (`total`: about how many bytes they hold,
        for the progress bar), yielding their entries in order as each batch is hashed
        and handed to the store threads: what a batch held is let go before the next is
        read. Its objects are durable once `flush` returns."""
        self._failed.clear()
        self.progress.start("hashing", total)
        try:
            for scanned in scans:
                items, stamps = scanned.items, scanned.stamps
                self.stats.files += len(items)
                results = self._store_all(items, stamps, scanned.known)
                for logical, local in items:
                    yield Entry(logical, stamps[local][1], *results[local])
        finally:
            self.progress.finish()

    def _store_all(
        self, items: list[tuple[str, str]], stamps: dict[str, Stamp], known: dict[str, Known]
    ) -> dict[str, tuple[str, tuple[Chunk, ...]]]:
        results: dict[str, tuple[str, tuple[Chunk, ...]]] = {}

        # files the stat cache knows: only make sure their objects are (still) stored
        if known:
            needed = {d for dig, chunks in known.values() for d in _objects(dig, chunks)}
            present = self._protect_all(sorted(needed))
            for local, (dig, chunks) in known.items():
                if all(d in present for d in _objects(dig, chunks)):
                    results[local] = (dig, chunks)
                    self.progress.advance(stamps[local][1])

        todo = [local for _, local in items if local not in results]
        small = [p for p in todo if stamps[p][1] <= self.params.threshold]
        large = [p for p in todo if stamps[p][1] > self.params.threshold]
        for batch in _batches(small, stamps):
            results.update(self._store_small(batch))
        if large:  # the small ones go first, as before a large file's long upload
            self._drain()
        for local in large:
            results[local] = self._store_large(local, stamps[local][1])
        # before the objects are durable: a stat cache hit is always checked against the
        # store (above, and `objects.intact` for an unchanged re-log), never trusted alone
        if self.statcache:
            self.statcache.store((p, stamps[p], *results[p]) for p in todo if os.path.exists(p))
        return results

    def put_objects(
        self, blobs: dict[str, bytes | memoryview], window: Window | None = None
    ) -> None:
        """Store ready-made objects (digest -> bytes) that are not stored yet.

        Views into `window` are held until their puts are done.
        """
        present = self._protect_all(list(blobs))
        self._send({d: data for d, data in blobs.items() if d not in present}, window)

    def held(self, digests: list[str]) -> set[str]:
        """Lease `digests`, then return those the namespace holds intact already (the
        others are the caller's to `send`)."""
        return self._protect_all(digests)

    def send(self, blobs: Mapping[str, bytes | memoryview]) -> None:
        """Store objects leased with `held` and not held: small ones as packs, once a
        pack's worth has come (`flush` sends the rest and makes them durable)."""
        self._send(dict(blobs))

    def _send(self, blobs: dict[str, bytes | memoryview], window: Window | None = None) -> None:
        """Send objects known to be missing: many small ones as packs, the rest alone.

        Small ones wait (leased already) until a pack's worth has come, across the
        batches of a log, so a log of a million small files sends full packs, each made
        durable once; `flush` sends what is left."""
        if self.packs is not None and window is None:
            small = {d: data for d, data in blobs.items() if len(data) <= MEMBER_MAX}
            if small:
                with self._stored_lock:
                    self._pending.update(small)
                    self._pending_bytes += sum(len(data) for data in small.values())
                    full = self._pending_bytes >= WAIT_BYTES
                    if full:
                        ready, self._pending, self._pending_bytes = self._pending, {}, 0
                if full:
                    for group in groups(ready):
                        self._submit_pack(group)
                blobs = {d: data for d, data in blobs.items() if d not in small}
        self._loose(blobs, window)

    def _drain(self) -> None:
        """Send the small objects still waiting: as packs if there are enough of them."""
        with self._stored_lock:
            ready, self._pending, self._pending_bytes = self._pending, {}, 0
        if len(ready) >= PACK_MIN:
            for group in groups(ready):
                self._submit_pack(group)
        else:
            self._loose(ready, None)

    def _loose(self, blobs: dict[str, bytes | memoryview], window: Window | None) -> None:
        """Send objects one by one, a slice of them per background task."""
        part: dict[str, bytes | memoryview] = {}
        size = 0
        for d, data in blobs.items():
            part[d] = data
            size += len(data)
            if len(part) >= _SLICE_OBJECTS or size >= _SLICE_BYTES:
                self._submit(part, size, window)
                part, size = {}, 0
        if part:
            self._submit(part, size, window)

    def copy_objects(self, digests: Iterable[str], *, source: str | None) -> set[str]:
        """Lease objects a version takes over; send those missing here from namespace
        `source` (read and checked against their digest first). Returns the digests found
        neither here nor there."""
        wanted = sorted(set(digests))
        present = self._protect_all(wanted)
        missing = [d for d in wanted if d not in present]
        if source is None or source == self.namespace:
            return set(missing)
        lost: set[str] = set()
        where = self.objects.locate(source, missing)
        packed = [d for d in missing if d in where]
        loose = [d for d in missing if d not in where]
        slices = [packed[i : i + _COPY_PACKED] for i in range(0, len(packed), _COPY_PACKED)]
        slices += [loose[i : i + _COPY_SLICE] for i in range(0, len(loose), _COPY_SLICE)]
        small: dict[str, bytes | memoryview] = {}  # gathered across slices, sent as packs
        small_bytes = 0
        for part in slices:
            got = self.objects.get_many(source, part, where=where)
            for d, exc in got.failed.items():
                if not isinstance(exc, FileNotFoundError):
                    raise exc
                lost.add(d)
            large: dict[str, bytes | memoryview] = {}
            for d, data in got.ok.items():
                if blake3.blake3(data).hexdigest() != d:
                    raise IntegrityError(f"object {d} is corrupt in the store; run `cairn verify`")
                if len(data) <= MEMBER_MAX:
                    small[d] = data
                    small_bytes += len(data)
                else:
                    large[d] = data
            self._send(large)
            if small_bytes >= PACK_BYTES:
                self._send(small)
                small, small_bytes = {}, 0
        self._send(small)
        return lost

    def flush(self) -> None:
        """Wait for every put, surface the first failure, and make the puts durable."""
        self._drain()
        self._wait()
        self.store.sync()

    def _wait(self) -> None:
        """Wait for every put sent so far, then raise the first failure, if any."""
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for f in futures:
            try:
                f.result()
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error

    def close(self) -> None:
        for pool in (self._pool, self._readers, self._hashers, self._whole, self._dispatcher):
            pool.shutdown(wait=True)

    # -- internals -----------------------------------------------------------------------

    def _stored(self, digests: set[str]) -> None:
        with self._stored_lock:
            self.stored |= digests if self._watch is None else digests & self._watch

    def _protect_all(self, digests: list[str]) -> set[str]:
        present: set[str] = set()
        # one protect call per batch: its existence check lists each folder at most once
        for i in range(0, len(digests), _SMALL_BATCH_FILES):
            present |= self.protect(digests[i : i + _SMALL_BATCH_FILES])
        return present

    def _store_small(self, paths: list[str]) -> dict[str, tuple[str, tuple[Chunk, ...]]]:
        blobs: dict[str, bytes | memoryview] = {}
        out: dict[str, tuple[str, tuple[Chunk, ...]]] = {}
        for path, data in zip(paths, self._readers.map(_read, paths), strict=True):
            d = digest(data)
            blobs[d] = data
            out[path] = (d, ())
            self.stats.files_hashed += 1
            self.stats.bytes_hashed += len(data)
            self.progress.advance(len(data))
        self.put_objects(blobs)
        return out

    def _store_large(self, path: str, size: int) -> tuple[str, tuple[Chunk, ...]]:
        """Cut, hash and store a large file, one window at a time, as a pipeline.

        The file is read once. Three stages overlap, each on threads of its own: this
        thread reads window k into a free buffer and cuts it; the hashers digest its
        chunks while the whole-file digest (a thread of its own) takes the windows in
        order; the dispatcher waits for window k-1's digests, leases them and hands the
        chunks the store lacks to the store threads, which write them from the same
        buffer. Memory is the chunker's buffers whatever the file size: reading waits
        for a window to be released by every stage. A failure in any stage stops the
        reading, lets every stage finish with its buffer, then raises.
        """
        whole = blake3.blake3()
        updates: list[Future[None]] = []
        stages: list[Future[list[Chunk]]] = []
        error: BaseException | None = None
        fd = os.open(path, os.O_RDONLY)
        try:
            for window in self._chunker.windows(fd, size, path):
                try:
                    if self._failed.is_set():
                        break
                    window.hold()
                    updates.append(self._whole.submit(_update, whole, window))
                    window.hold()
                    hashing = self._hash(window)
                finally:
                    window.release()
                stages.append(self._dispatcher.submit(self._store_window, hashing))
        except BaseException as exc:
            error = exc
            self._failed.set()
        finally:
            os.close(fd)
        # every stage runs to its end: no buffer still in use, no task left behind
        chunks: list[Chunk] = []
        for stage in stages:
            try:
                chunks += stage.result()
            except BaseException as exc:
                error = error or exc
        for update in updates:
            try:
                update.result()
            except BaseException as exc:
                error = error or exc
        if error is not None or self._failed.is_set():
            try:
                self._wait()  # no put still going; if one failed, its error is the one
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error
        if sum(c.size for c in chunks) != size:
            raise CairnError(f"file {path!r} changed while logging; nothing was logged")
        self.stats.files_hashed += 1
        return whole.hexdigest(), tuple(chunks)

    def _hash(self, window: Window) -> _Hashing:
        """Start digesting a window's chunks: one task per hasher thread, not one per
        chunk (each hand-off between threads costs more than hashing a chunk)."""
        pieces = window.pieces()
        n = self._hash_threads
        tasks = [self._hashers.submit(_digest_all, pieces[i::n]) for i in range(n)]
        return _Hashing(window, pieces, tasks)

    def _store_window(self, hashing: _Hashing) -> list[Chunk]:
        """Wait for a window's digests, then send its chunks the store lacks (on the
        dispatcher thread). Releases the window's hold taken for its hashing; each put
        holds it again until that put is done."""
        window, pieces = hashing.window, hashing.pieces
        try:
            n = len(hashing.tasks)
            digests = [""] * len(pieces)
            for i, task in enumerate(hashing.tasks):
                digests[i::n] = task.result()
            if self._failed.is_set():
                return []  # an earlier stage failed: nothing more goes out
            self.put_objects(dict(zip(digests, pieces, strict=True)), window)
        except BaseException:
            self._failed.set()
            raise
        finally:
            window.release()
        self.stats.bytes_hashed += window.length
        self.progress.advance(window.length)
        return [Chunk(d, len(p)) for d, p in zip(digests, pieces, strict=True)]

    def _submit(
        self, blobs: Mapping[str, bytes | memoryview], size: int, window: Window | None = None
    ) -> None:
        """Send `blobs` in the background, with one batched store call."""
        self._inflight.take(size)
        if window is not None:
            window.hold()

        def put() -> None:
            try:
                keys = {d: object_key(d, namespace=self.namespace) for d in blobs}
                done = self.store.put_many({keys[d]: data for d, data in blobs.items()})
                for d, data in blobs.items():
                    if keys[d] in done.ok:
                        self.stats.sent(len(data))
                self._stored({d for d in blobs if keys[d] in done.ok})
                done.raise_first()
            except BaseException:
                self._failed.set()
                raise
            finally:
                self._inflight.give(size)
                if window is not None:
                    window.release()

        self._queued(self._pool.submit(put))

    def _queued(self, future: Future[None]) -> None:
        """Keep a put until `_wait`; puts that went well are let go (a log of a million
        files sends tens of thousands), failed ones kept for `_wait` to raise."""
        self._futures.append(future)
        if len(self._futures) >= 256:
            self._futures = [f for f in self._futures if not f.done() or f.exception()]

    def _submit_pack(self, blobs: list[tuple[str, bytes | memoryview]]) -> None:
        """Send objects as one pack in the background, then index them: leased first
        (gc leaves the pack alone until it is indexed), indexed once durable (a re-run
        after a crash finds them and does not send them again)."""
        index = self.packs
        assert index is not None
        size = sum(len(data) for _, data in blobs)
        self._inflight.take(size)

        def put() -> None:
            try:
                pack, data, members = build_pack(blobs)
                index.lease([pack])
                self.store.put(pack_key(pack, namespace=self.namespace), data)
                self.store.sync()
                index.record(members)
                for m in members:
                    self.stats.sent(m.size)
                self._stored({m.digest for m in members})
            except BaseException:
                self._failed.set()
                raise
            finally:
                self._inflight.give(size)

        self._queued(self._pool.submit(put))


class _Budget:
    """Makes producers wait while `limit` bytes are queued or in flight.

    A single request larger than the limit waits for an empty budget and then goes alone.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def take(self, n: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n

    def give(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


@dataclass
class _Hashing:
    """A window whose chunks the hashers are digesting (task i: chunks i, i+n, ...)."""

    window: Window
    pieces: list[memoryview]
    tasks: list[Future[list[str]]]


def _digest_all(pieces: list[memoryview]) -> list[str]:
    return [digest(p) for p in pieces]


def _update(whole: blake3.blake3, window: Window) -> None:
    try:
        whole.update(window.view[: window.length])
    finally:
        window.release()


def _objects(dig: str, chunks: tuple[Chunk, ...]) -> list[str]:
    return [c.digest for c in chunks] if chunks else [dig]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _batches(paths: list[str], stamps: dict[str, Stamp]) -> Iterable[list[str]]:
    batch: list[str] = []
    size = 0
    for p in paths:
        batch.append(p)
        size += stamps[p][1]
        if len(batch) >= _SMALL_BATCH_FILES or size >= _SMALL_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
