"""Checkouts: a version's files placed in a local folder, without surprises.

Into an empty or new folder the version is written. A folder holding a previous checkout
of the same collection (its marker says so, cairn.marker) is updated in place, like
`git checkout`: what the version no longer has is removed if unmodified. Local edits,
files cairn did not make and links stop the get with one error naming them, unless
`force` (then the version's paths win and unrelated files are kept). The whole folder is
checked before anything in it changes.

Every path is reached through cairn.confined, never through a link, so nothing is
written outside the folder. Each file gets its name only once whole (cairn.confined),
after a marker listing what is about to be written: an interrupted get leaves each path
with its old content, its new content or nothing, and a re-run completes it. Files are
written by WRITERS threads, a part of one folder each, through that folder's own
descriptor: a version of many small files costs about what `cp -r` of them costs. Files are
copy-on-write clones of the cache where the file system can, hardlinks only when asked
(`link`), else copies: a checkout is never a writable alias of the cache.
"""

from __future__ import annotations

import errno
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, islice

import blake3

from ..foundation.errors import CairnError, Conflict, NotFound
from ..foundation.files import clone_fd, copy_fd
from ..foundation.manifest import DIR, FILE, LINK, Entry, Manifest
from .cache import Cache
from .confined import TMP_PREFIX, ConfinedDir, Pinned, kind_of
from .download import cache_key
from .marker import MARKER, RACY_NS, Marker, Spool, Written, write_all

#: entries -> cache_key(entry) -> local path of verified content (Downloader.ensure)
Fetch = Callable[[list[Entry]], dict[str, str]]
#: manifest digest -> the manifest (NotFound if the catalog no longer has it)
Load = Callable[[str], Manifest]
_SHOWN = 5  # paths an error names; the rest are counted
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


@dataclass(frozen=True)
class Target:
    """The version checked out: `ref` names it exactly, `digest` is its manifest's."""

    ref: str
    project: str
    collection: str
    version: str
    digest: str


@dataclass
class _Plan:
    """What a get will do, decided before anything changes: what is in the folder and
    must go or stay. Every other file and link of the version is written."""

    remove: list[str] = field(default_factory=list)  # files and links, or folders in the way
    kept: dict[str, os.stat_result] = field(default_factory=dict)  # right already
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why) for the error
    strays: list[str] = field(default_factory=list)  # folders the version does not have


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
        run = _Checkout(target, manifest, folder, cache=cache, load=load, link=link)
        plan = run.plan(force=force)
        if plan.problems and not force:
            raise run.refusal(plan.problems)
        run.apply(plan, fetch)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        # a path vanishing or changing kind under the get: another process at work there
        raced = exc.errno in _RACES
        hint = " (did something else change the folder meanwhile?)" if raced else ""
        raise Conflict(
            f"cannot check out {target.ref} into {folder.path}: {exc.strerror}{where}{hint}"
        ) from exc


class _Checkout:
    def __init__(
        self,
        target: Target,
        manifest: Manifest,
        folder: ConfinedDir,
        *,
        cache: Cache,
        load: Load,
        link: bool,
    ):
        self.target = target
        self.manifest = manifest
        self.folder = folder
        self.cache = cache
        self.link = link
        # the manifest is streamed (Manifest.stream): a get holds a batch of entries at
        # a time, and walks the manifest once into an empty folder, twice into another
        # (its folders are known first, to judge what is in the way)
        self.wanted_dirs: set[str] | None = None
        self.marker, self.other = self._read_marker()
        self.incoming = self._incoming_manifests(load)
        self._digests: dict[str, str] = {}  # path -> digest hashed from disk this run
        self._clone = True  # until the file system says it cannot

    # -- reading the folder --------------------------------------------------------------------

    def _read_marker(self) -> tuple[Marker | None, str | None]:
        """(marker of a checkout of this collection, or None; what else the folder is)."""
        st = self.folder.lstat(MARKER)
        if st is None:
            return None, None
        if kind_of(st) != "file":
            return None, f"has a {MARKER} that is no marker"
        chunks: list[bytes] = []
        self.folder.read(MARKER, lambda fd: chunks.append(_read_all(fd)))
        marker = Marker.from_bytes(b"".join(chunks), written_ns=st.st_mtime_ns)
        if marker is None:
            return None, f"has a {MARKER} this cairn cannot read"
        if (marker.project, marker.collection) != (self.target.project, self.target.collection):
            return None, f"is a checkout of {marker.ref}, not of {self._collection()}"
        return marker, None

    def _incoming_manifests(self, load: Load) -> list[Manifest]:
        """The manifests an interrupted get was writing: each of their entries may be on
        disk. One that is gone from the catalog (its version deleted and collected)
        leaves its files unknown: they are then reported, never removed."""
        out = []
        for digest in self.marker.incoming_versions if self.marker else ():
            if digest == self.target.digest:
                out.append(self.manifest)
                continue
            try:
                out.append(load(digest))
            except NotFound:
                continue
        return out

    def _collection(self) -> str:
        return f"{self.target.project}/{self.target.collection}"

    def _candidates(self, path: str) -> list[Written]:
        """What cairn may have left at `path`: what it wrote, or was about to write."""
        if self.marker is None:
            return []
        out = self.marker.candidates(path)
        for m in self.incoming:
            e = m.get(path)
            if e is not None:
                out.append(Written(e.kind, e.digest, e.size, e.target))
        return out

    def _recorded(self, path: str) -> bool:
        """Whether the marker has `path` as cairn's (written, or maybe written)."""
        return bool(self._candidates(path))

    def _mine(self, path: str, st: os.stat_result) -> Written | None:
        """What cairn wrote at `path`, if the file or link there is still exactly that."""
        if self.marker is None:
            return None
        kind = kind_of(st)
        for w in self._candidates(path):
            if w.kind != kind:
                continue
            if kind == LINK and self.folder.readlink(path) == w.target:
                return w
            if kind == FILE:
                if self.marker.stamp_matches(path, st) is w:
                    return w
                if w.digest and st.st_size == w.size and self._hash(path) == w.digest:
                    return w
        return None

    def _hash(self, path: str) -> str:
        if path not in self._digests:
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            self.folder.read(path, lambda fd: _hash_into(h, fd))
            self._digests[path] = h.hexdigest()
        return self._digests[path]

    def _is_wanted(self, path: str, st: os.stat_result, mine: Written | None, e: Entry) -> bool:
        """Whether what is at `path` already is entry `e`."""
        kind = kind_of(st)
        if e.kind == LINK:
            return kind == LINK and self.folder.readlink(path) == e.target
        if kind != FILE or e.digest is None or st.st_size != e.size:
            return False
        if mine is not None:
            return mine.digest == e.digest
        return self._hash(path) == e.digest

    # -- planning ------------------------------------------------------------------------------

    def plan(self, *, force: bool) -> _Plan:
        """Compare the folder with the version; the plan says what to change and, in
        `problems`, what the user's would be touched (or stands in the way)."""
        plan = _Plan()
        if self.other is not None and not self.other.startswith("is a checkout"):
            plan.problems.append((MARKER, "not cairn's marker"))
        found = (item for item in self.folder.walk() if item[0] != MARKER)
        first = next(found, None)
        if first is None:
            return plan  # nothing in the way: the folders are made as the files come
        self.wanted_dirs = _folders_of(self.manifest.stream())
        for path, st in chain([first], found):
            self._judge(plan, path, st)
        return plan

    def _judge(self, plan: _Plan, path: str, st: os.stat_result) -> None:
        """Plan for what is at `path`: keep it, remove it, write over it, or report it."""
        assert self.wanted_dirs is not None
        kind = kind_of(st)
        e = self.manifest.get(path)
        if kind == DIR:
            if e is not None and e.kind != DIR:
                # a folder where a file or link goes: what is in it is judged path by
                # path, and goes with it
                plan.remove.append(path)
            elif path not in self.wanted_dirs:
                plan.strays.append(path)
            return
        mine = self._mine(path, st)
        if e is not None and e.kind != DIR:
            if self._is_wanted(path, st, mine, e):
                if not (e.kind == FILE and self._aliases_cache(st, e)):
                    plan.kept[path] = st  # else a hardlink of the cache becomes a copy
                return
            if mine is None:
                plan.problems.append((path, self._why(path, kind)))
        elif path in self.wanted_dirs:
            plan.remove.append(path)  # a file or link where a folder goes
            if mine is None:
                plan.problems.append((path, f"{_a(kind)} where the version has a folder"))
        elif mine is not None or self._leftover(path):
            plan.remove.append(path)
        elif self._recorded(path):
            plan.remove.append(path)  # edited, and the version has it no more
            plan.problems.append((path, "edited"))
        else:
            plan.problems.append((path, self._why(path, kind)))

    def _aliases_cache(self, st: os.stat_result, e: Entry) -> bool:
        """A hardlink of the cache file while copies are wanted."""
        if self.link or st.st_nlink < 2 or e.digest is None:
            return False
        try:
            cst = os.stat(self.cache.path(e.digest))
        except OSError:
            return False
        return (cst.st_dev, cst.st_ino) == (st.st_dev, st.st_ino)

    def _leftover(self, path: str) -> bool:
        """A temporary file an interrupted get of this checkout left behind."""
        return self.marker is not None and path.rsplit("/", 1)[-1].startswith(TMP_PREFIX)

    def _why(self, path: str, kind: str) -> str:
        if self._recorded(path):
            return "edited"
        return "a link, not cairn's" if kind == LINK else "not cairn's"

    def refusal(self, problems: list[tuple[str, str]]) -> Conflict:
        n = len(problems)
        shown = ", ".join(f"{p} ({why})" for p, why in problems[:_SHOWN])
        more = f" and {n - _SHOWN} more" if n > _SHOWN else ""
        if self.marker is not None:
            state = "" if self.marker.complete else ", interrupted"
            what = f"a checkout of {self.marker.ref}{state}"
        else:
            what = self.other or f"not a checkout of {self._collection()}"
            what = what.removeprefix("is ")
        paths = "path" if n == 1 else "paths"
        return Conflict(
            f"cannot check out {self.target.ref} into {self.folder.path} ({what}): {n} {paths} "
            f"cairn did not write or that changed since: {shown}{more}; nothing was changed. "
            "Move them away, or pass force=True (--force) to write the version over them"
        )

    # -- applying ------------------------------------------------------------------------------

    def apply(self, plan: _Plan, fetch: Fetch) -> None:
        # a batch of entries at a time: fetched, then written, then recorded in the
        # marker-to-be, so what a get holds is bounded however many files the version
        # has; the first batch, all of a version of up to BATCH entries, is fetched
        # before the folder changes
        batches = _batched(self.manifest.stream(), BATCH)
        first = next(batches, ())
        sources = _fetch(fetch, self._to_write(first, plan))
        changes = self.manifest.file_count > len(plan.kept) or plan.remove
        if changes or not (self.marker and self.marker.complete):
            # first: a re-run after an interruption knows what this get may have written
            self._write_marker(self._under_way())
        for path in sorted(plan.remove, key=lambda p: -p.count("/")):
            self.folder.remove(path)
        made: set[str] = set()
        newest = 0
        every = chain([first], batches) if first else iter(())
        del first  # a batch is let go once written
        with Spool(self.cache.root) as record:
            for i, batch in enumerate(every):
                files = self._to_write(batch, plan)
                if i:
                    sources = _fetch(fetch, files)
                for d in sorted(_folders_of(batch) - made):
                    self.folder.mkdir(d)
                    made.add(d)
                written = self._place_all(files, sources)
                sources = {}
                for e in batch:
                    if e.kind == LINK and e.path not in plan.kept:
                        assert e.target is not None
                        self.folder.symlink(e.path, e.target)
                record.add(self._records(batch, written, plan.kept))
                newest = max([newest, *(w.mtime_ns or 0 for w in written.values())])
            self._prune(plan)
            if newest:
                # the marker a tick later than the newest file, so a later get trusts
                # its stamp instead of reading the file again (marker.RACY_NS)
                time.sleep(max(0, newest + RACY_NS + _TICK_NS - time.time_ns()) / 1e9)
            self._write_marker(self._done(), record)

    def _to_write(self, batch: Sequence[Entry], plan: _Plan) -> list[Entry]:
        return [e for e in batch if e.kind == FILE and e.path not in plan.kept]

    def _records(
        self, batch: Sequence[Entry], written: dict[str, Written], kept: dict[str, os.stat_result]
    ) -> Iterator[tuple[str, Written]]:
        """The marker's record of each entry of `batch`, as placed."""
        for e in batch:
            if e.kind == FILE:
                yield e.path, written.get(e.path) or _stamped(kept[e.path], e.digest)
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
            entries=dict(old.entries) if old else {},
            incoming=dict(old.incoming) if old else {},
            incoming_versions=tuple(dict.fromkeys(versions)),
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
                stats = pinned.copy_small(
                    [(e.path.rpartition("/")[2], sources[e.digest], e.size) for e in small],  # type: ignore[index]
                    self._copy,
                )
                out = [(e.path, _stamped(st, e.digest)) for e, st in zip(small, stats, strict=True)]
                if len(small) < len(part):
                    rest = (e for e in part if not (e.size <= SMALL and e.digest))
                    out += [(e.path, self._place(pinned, e, sources[cache_key(e)])) for e in rest]
                return out

        written: dict[str, Written] = {}
        if len(entries) < _SERIAL:
            for rel, part in parts:
                written.update(place(rel, part))
            return written
        pool = ThreadPoolExecutor(WRITERS)
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
            st = pinned.write(name, lambda dst: self._copy(src, dst, e.size), small=e.size <= SMALL)
            return _stamped(st, digest)
        finally:
            os.close(src)

    def _copy(self, src: int, dst: int, size: int) -> None:
        if self._clone and clone_fd(src, dst):
            return
        self._clone = False  # one refusal is the file system's answer for every file
        copy_fd(src, dst, size)

    def _prune(self, plan: _Plan) -> None:
        """Remove folders cairn made for paths the version no longer has, once empty."""
        if self.marker is None or not plan.strays:
            return
        made = set()
        for p in self.marker.paths():
            if any(w.kind == DIR for w in self.marker.candidates(p)):
                made.add(p)
            while "/" in p:
                p = p.rsplit("/", 1)[0]
                made.add(p)
        for d in sorted(plan.strays, key=lambda p: -p.count("/")):
            if d in made or any(next(m.under(d), None) is not None for m in self.incoming):
                self.folder.rmdir(d)

    def _write_marker(self, marker: Marker, entries: Spool | None = None) -> None:
        """Write `marker`, its entries taken from `entries` if given."""
        if entries is None:
            body = marker.to_bytes()

            def fill(fd: int) -> None:
                write_all(fd, body)
                os.fsync(fd)

        else:
            head, tail = marker.frame()

            def fill(fd: int) -> None:
                write_all(fd, head.encode())
                entries.copy_to(fd)
                write_all(fd, tail.encode())
                os.fsync(fd)

        self.folder.write(MARKER, fill)
        self.folder.fsync()


def _batched(entries: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    while batch := list(islice(entries, size)):
        yield batch


def _fetch(fetch: Fetch, entries: list[Entry]) -> dict[str, str]:
    """`fetch` of each content once."""
    return fetch(list({cache_key(e): e for e in entries}.values()))


def _folders_of(entries: Iterable[Entry]) -> set[str]:
    """Every folder the entries need: their parents, and the empty-folder entries."""
    dirs: set[str] = set()
    for e in entries:
        p = e.path if e.kind == DIR else e.path.rpartition("/")[0]
        while p and p not in dirs:  # a folder's parents were added with it
            dirs.add(p)
            p = p.rpartition("/")[0]
    return dirs


def _stamped(st: os.stat_result, digest: str | None) -> Written:
    return Written(FILE, digest, st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino)


def _a(kind: str) -> str:
    return {"link": "a link", "file": "a file"}.get(kind, "something")


def _read_all(fd: int) -> bytes:
    chunks = []
    while block := os.read(fd, 1 << 20):
        chunks.append(block)
    return b"".join(chunks)


def _hash_into(h: blake3.blake3, fd: int) -> None:
    while block := os.read(fd, 4 << 20):
        h.update(block)


def _digest_of(path: str) -> str:
    h = blake3.blake3()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _hash_into(h, fd)
    finally:
        os.close(fd)
    return h.hexdigest()
