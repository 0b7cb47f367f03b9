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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import blake3

from ..foundation.errors import CairnError, Conflict
from ..foundation.files import clone_fd, copy_fd
from ..foundation.manifest import DIR, FILE, LINK, Entry, Manifest
from .cache import Cache
from .confined import TMP_PREFIX, ConfinedDir, Pinned, kind_of
from .download import cache_key
from .marker import MARKER, RACY_NS, Marker, Written

#: entries -> cache_key(entry) -> local path of verified content (Downloader.ensure)
Fetch = Callable[[list[Entry]], dict[str, str]]
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
BATCH = 16384  # files fetched, then written, at a time
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
    """What a get will do, decided before anything changes."""

    remove: list[str] = field(default_factory=list)  # files and links, or folders in the way
    write: list[Entry] = field(default_factory=list)  # files, written whole
    links: list[Entry] = field(default_factory=list)
    kept: dict[str, os.stat_result] = field(default_factory=dict)  # right already
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why) for the error


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
    force: bool = False,
    link: bool = False,
) -> None:
    """Make `folder` hold `target`'s entries (module docstring for the rules)."""
    reserved(manifest)
    folder.lock()
    try:
        run = _Checkout(target, manifest, folder, cache=cache, link=link)
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
        self, target: Target, manifest: Manifest, folder: ConfinedDir, *, cache: Cache, link: bool
    ):
        self.target = target
        self.manifest = manifest
        self.folder = folder
        self.cache = cache
        self.link = link
        # the manifest is walked once: a large one is read a shard at a time and only a
        # budget of shards is kept (manifest.CACHED_ENTRIES), so every later step works
        # from this list instead of reading the shards again
        self.entries = list(manifest.values())
        self.wanted_dirs = _folders_of(self.entries)
        self.marker, self.other = self._read_marker()
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

    def _collection(self) -> str:
        return f"{self.target.project}/{self.target.collection}"

    def _mine(self, path: str, st: os.stat_result) -> Written | None:
        """What cairn wrote at `path`, if the file or link there is still exactly that."""
        if self.marker is None:
            return None
        kind = kind_of(st)
        for w in self.marker.candidates(path):
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
        recorded = self.marker.paths() if self.marker else set()
        seen: set[str] = set()
        for path, st in self.folder.walk():
            if path == MARKER:
                if self.other is not None and not self.other.startswith("is a checkout"):
                    plan.problems.append((path, "not cairn's marker"))
                continue
            seen.add(path)
            kind = kind_of(st)
            e = self.manifest.get(path)
            if kind == DIR:
                if e is not None and e.kind != DIR:
                    # a folder where a file or link goes: what is in it is judged path by
                    # path below, and goes with it
                    plan.remove.append(path)
                    (plan.write if e.kind == FILE else plan.links).append(e)
                continue
            mine = self._mine(path, st)
            if e is not None and e.kind != DIR:
                if self._is_wanted(path, st, mine, e):
                    if e.kind == FILE and self._aliases_cache(st, e):
                        plan.write.append(e)  # a hardlink of the cache becomes a copy
                    else:
                        plan.kept[path] = st
                    continue
                (plan.write if e.kind == FILE else plan.links).append(e)
                if mine is None:
                    plan.problems.append((path, self._why(path, kind, recorded)))
            elif path in self.wanted_dirs:
                plan.remove.append(path)  # a file or link where a folder goes
                if mine is None:
                    plan.problems.append((path, f"{_a(kind)} where the version has a folder"))
            elif mine is not None or self._leftover(path):
                plan.remove.append(path)
            elif path in recorded:
                plan.remove.append(path)  # edited, and the version has it no more
                plan.problems.append((path, "edited"))
            else:
                plan.problems.append((path, self._why(path, kind, recorded)))
        for e in self.entries:
            if e.path not in seen:
                if e.kind == FILE:
                    plan.write.append(e)
                elif e.kind == LINK:
                    plan.links.append(e)
        return plan

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

    def _why(self, path: str, kind: str, recorded: set[str]) -> str:
        if path in recorded:
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
        # fetched and written a batch at a time, so what the fetch holds per file (where
        # each is in the store, its cache path) is bounded; the first batch, all of a
        # version of up to BATCH files, is fetched before the folder changes
        batches = [plan.write[i : i + BATCH] for i in range(0, len(plan.write), BATCH)]
        sources = _fetch(fetch, batches[0]) if batches else {}
        if plan.remove or plan.write or plan.links or not (self.marker and self.marker.complete):
            # first: a re-run after an interruption knows what this get may have written
            before = dict(self.marker.entries) if self.marker else {}
            self._write_marker(entries=before, incoming=self._incoming(), complete=False)
        for path in sorted(plan.remove, key=lambda p: -p.count("/")):
            self.folder.remove(path)
        for d in sorted(self.wanted_dirs):
            self.folder.mkdir(d)
        written: dict[str, Written] = {}
        for i, batch in enumerate(batches):
            if i:
                sources = _fetch(fetch, batch)
            written.update(self._place_all(batch, sources))
            sources = {}
        for e in plan.links:
            assert e.target is not None
            self.folder.symlink(e.path, e.target)
        self._prune()
        if written:
            # the marker a tick later than the newest file, so a later get trusts its stamp
            # instead of reading the file again (marker.RACY_NS)
            newest = max(w.mtime_ns or 0 for w in written.values())
            time.sleep(max(0, newest + RACY_NS + _TICK_NS - time.time_ns()) / 1e9)
        entries = {}
        for e in self.entries:
            if e.kind == FILE:
                entries[e.path] = written.get(e.path) or _stamped(plan.kept[e.path], e.digest)
            else:
                entries[e.path] = Written(e.kind, target=e.target)
        self._write_marker(entries=entries, incoming={}, complete=True)

    def _incoming(self) -> dict[str, list[Written]]:
        """What may be on disk while this get runs: its own entries, and what an earlier
        interrupted get may have left."""
        out = dict(self.marker.incoming) if self.marker else {}
        for e in self.entries:
            w = Written(e.kind, e.digest, e.size, e.target)
            old = out.get(e.path)
            out[e.path] = [w, *(x for x in old if x != w)] if old else [w]
        return out

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
            for done in [pool.submit(place, rel, part) for rel, part in parts]:
                written.update(done.result())
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

    def _prune(self) -> None:
        """Remove folders cairn made for paths the version no longer has, once empty."""
        if self.marker is None:
            return
        made = set()
        for p in self.marker.paths():
            if any(w.kind == DIR for w in self.marker.candidates(p)):
                made.add(p)
            while "/" in p:
                p = p.rsplit("/", 1)[0]
                made.add(p)
        for d in sorted(made - self.wanted_dirs, key=lambda p: -p.count("/")):
            self.folder.rmdir(d)

    def _write_marker(
        self, *, entries: dict[str, Written], incoming: dict[str, list[Written]], complete: bool
    ) -> None:
        t = self.target
        body = Marker(
            ref=t.ref,
            project=t.project,
            collection=t.collection,
            version=t.version,
            digest=t.digest,
            complete=complete,
            entries=entries,
            incoming=incoming,
        ).to_bytes()

        def fill(fd: int) -> None:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)

        self.folder.write(MARKER, fill)
        self.folder.fsync()


def _fetch(fetch: Fetch, entries: list[Entry]) -> dict[str, str]:
    """`fetch` of each content once."""
    return fetch(list({cache_key(e): e for e in entries}.values()))


def _folders_of(entries: list[Entry]) -> set[str]:
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
