"""What a get finds in its folder, and what it will change there (cairn.engine.checkout).

A path is cairn's when the marker records it (or an interrupted get was writing it) and
it is unmodified; a path that already holds what the version has is kept, whoever wrote
it; anything else the get would touch is a problem, reported before anything changes
(docs/FORMAT.md, "Checkouts", rule 2).
"""

from __future__ import annotations

import marshal
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Generic, TypeVar

import blake3

from ..foundation.errors import Conflict, NotFound
from ..foundation.manifest import DIR, FILE, LINK, Entry, Manifest
from . import marker as markers
from .cache import Cache
from .confined import TMP_PREFIX, ConfinedDir, kind_of
from .marker import MARKER, Marker, Unreadable, Written

#: manifest digest -> the manifest (NotFound if the catalog no longer has it)
Load = Callable[[str], Manifest]
_SHOWN = 5  # paths an error names; the rest are counted
_KEPT_BATCH = 4096  # records of kept paths written at a time
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """The version checked out: `ref` names it exactly, `digest` is its manifest's."""

    ref: str
    project: str
    collection: str
    version: str
    digest: str


class Kept:
    """The version's paths a get finds right already, with the marker's record of each
    (the marker's own where it holds that very stamp), in path order: in an unnamed file
    in `folder` (the cache), not in memory, so an update of a million unchanged files
    holds none of their records."""

    def __init__(self, folder: str) -> None:
        self._file = tempfile.TemporaryFile(prefix=".tmp-kept-", dir=folder)  # noqa: SIM115
        self._batch: list[tuple[object, ...]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, path: str, w: Written) -> None:
        self._batch.append((path, w.kind, w.digest, w.size, w.target, w.mtime_ns, w.ino))
        self._count += 1
        if len(self._batch) >= _KEPT_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            # a batch's length, then the batch: read back whole (marshal.load of a file
            # reads it in tiny pieces, 30 times slower)
            data = marshal.dumps(self._batch)
            self._file.write(len(data).to_bytes(8, "little") + data)
            self._batch = []

    def records(self) -> Iterator[tuple[str, Written]]:
        """(path, record) of each kept path, in path order."""
        self._flush()
        self._file.seek(0)
        while size := int.from_bytes(self._file.read(8), "little"):
            for path, *fields in marshal.loads(self._file.read(size)):
                yield path, Written(*fields)

    def close(self) -> None:
        self._file.close()


@dataclass
class Plan:
    """What a get will do, decided before anything changes: what is in the folder and
    must go or stay. Every other file and link of the version is written."""

    kept: Kept  # right already
    remove: list[str] = field(default_factory=list)  # files and links, or folders in the way
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why) for the error
    strays: list[str] = field(default_factory=list)  # folders the version does not have

    def close(self) -> None:
        self.kept.close()


class Found:
    """The folder a get goes into, as found: its marker, what cairn may have left there,
    and (`plan`) what the get must remove, keep, or may not touch."""

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
        # the manifest is streamed (Manifest.stream): into an empty folder a get walks
        # it once; into another, once more first, merged with the folder's walk (plan),
        # noting the folders it needs as it goes
        self.wanted_dirs: set[str] | None = None
        self._fd: int | None = None  # the marker's file, read while the get runs
        self.marker, self.other = self._read_marker()
        try:
            self.incoming = self._incoming_manifests(load)
        except BaseException:
            self.close()
            raise
        self._digests: dict[str, str] = {}  # path -> digest hashed from disk this run
        self._made: set[str] = set()  # folders the marker has, or has paths in

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading the folder --------------------------------------------------------------------

    def _read_marker(self, *, whole: bool = False) -> tuple[Marker | None, str | None]:
        """(marker of a checkout of this collection, or None; what else the folder is).
        Its entries stay in its file, read as the plan needs them, unless `whole`."""
        st = self.folder.lstat(MARKER)
        if st is None:
            return None, None
        if kind_of(st) != "file":
            return None, f"has a {MARKER} that is no marker"
        self.close()
        self._fd = self.folder.open(MARKER)
        if whole:
            body = markers.read_all(self._fd)
            marker = Marker.from_bytes(body, written_ns=st.st_mtime_ns)
        else:
            marker = markers.read(self._fd, written_ns=st.st_mtime_ns)
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

    def candidates(self, path: str, record: Written | None) -> list[Written]:
        """What cairn may have left at `path`, whose marker entry is `record`: what it
        wrote, or was about to write."""
        if self.marker is None:
            return []
        out = self.marker.candidates(path, record)
        for m in self.incoming:
            e = m.get(path)
            if e is not None:
                out.append(Written(e.kind, e.digest, e.size, e.target))
        return out

    def _mine(self, path: str, st: os.stat_result, record: Written | None) -> Written | None:
        """What cairn wrote at `path`, if the file or link there is still exactly that."""
        if self.marker is None:
            return None
        kind = kind_of(st)
        for w in self.candidates(path, record):
            if w.kind != kind:
                continue
            if kind == LINK and self.folder.readlink(path) == w.target:
                return w
            if kind == FILE:
                if w is record and self.marker.trusts(w, st):
                    return w
                if w.digest and st.st_size == w.size and self._hash(path) == w.digest:
                    return w
        return None

    def _hash(self, path: str) -> str:
        if path not in self._digests:
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            self.folder.read(path, lambda fd: hash_into(h, fd))
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

    def plan(self) -> Plan:
        """Compare the folder with the version; the plan says what to change and, in
        `problems`, what the user's would be touched (or stands in the way)."""
        try:
            return self._plan()
        except Unreadable:
            # the marker's entries, read as the folder was walked, are not a marker's:
            # read it whole to tell (not cairn's, or a marker out of order)
            self.marker, self.other = self._read_marker(whole=True)
            return self._plan()

    def _plan(self) -> Plan:
        """The folder's walk, the version's entries and the marker's, all in path order,
        merged: what is at each path is judged holding one entry of each. What depends
        on the version's folders (a folder found, or a file the version does not have
        as one) is judged once the version has been read to its end."""
        plan = Plan(Kept(self.cache.root))
        try:
            if self.other is not None and not self.other.startswith("is a checkout"):
                plan.problems.append((MARKER, "not cairn's marker"))
            found = (item for item in self.folder.walk() if item[0] != MARKER)
            first = next(found, None)
            recorded = Cursor(self._records())
            if first is None:
                # nothing in the way: the folders are made as the files come (the marker
                # read to its end, so that it is known to be one)
                recorded.drain()
                return plan
            wanted = Cursor(self._wanted())
            later = []
            for path, st in chain([first], found):
                e, record = wanted.at(path), recorded.at(path)
                if e is None or e.kind == DIR or kind_of(st) == DIR:
                    later.append((path, st, e, record))
                else:
                    self._judge(plan, path, st, e, record)
            wanted.drain()  # every folder of the version (wanted_dirs)
            recorded.drain()  # every folder the marker has (made_by_cairn)
            for item in later:
                self._judge(plan, *item)
            first_problem = int(plan.problems[:1] == [(MARKER, "not cairn's marker")])
            plan.problems[first_problem:] = sorted(plan.problems[first_problem:])
            return plan
        except BaseException:
            plan.close()
            raise

    def _wanted(self) -> Iterator[tuple[str, Entry]]:
        """The version's entries in path order; the folders they need are noted."""
        self.wanted_dirs = set()
        for e in self.manifest.stream():
            _add_folder(self.wanted_dirs, e.path if e.kind == DIR else _parent(e.path))
            yield e.path, e

    def _records(self) -> Iterator[tuple[str, Written]]:
        """The marker's entries in path order; the folders they are in are noted."""
        self._made = set()
        if self.marker is None:
            return
        for p in self.marker.incoming:
            self._note(p, self.marker.incoming[p])
        for p, w in self.marker.records():
            self._note(p, [w])
            yield p, w

    def _note(self, path: str, ws: list[Written]) -> None:
        _add_folder(self._made, path if any(w.kind == DIR for w in ws) else _parent(path))

    def _judge(
        self,
        plan: Plan,
        path: str,
        st: os.stat_result,
        e: Entry | None,
        record: Written | None,
    ) -> None:
        """Plan for what is at `path`, the version's entry `e` and the marker's `record`
        there: keep it, remove it, write over it, or report it."""
        assert self.wanted_dirs is not None
        kind = kind_of(st)
        if kind == DIR:
            if e is not None and e.kind != DIR:
                # a folder where a file or link goes: what is in it is judged path by
                # path, and goes with it
                plan.remove.append(path)
            elif path not in self.wanted_dirs:
                plan.strays.append(path)
            return
        mine = self._mine(path, st, record)
        if e is not None and e.kind != DIR:
            if self._is_wanted(path, st, mine, e):
                if not (e.kind == FILE and self._aliases_cache(st, e)):
                    plan.kept.add(path, _record(e, st, mine))
                return  # else a hardlink of the cache becomes a copy
            if mine is None:
                plan.problems.append((path, self._why(path, kind, record)))
        elif path in self.wanted_dirs:
            plan.remove.append(path)  # a file or link where a folder goes
            if mine is None:
                plan.problems.append((path, f"{_a(kind)} where the version has a folder"))
        elif mine is not None or self._leftover(path):
            plan.remove.append(path)
        elif self.candidates(path, record):
            plan.remove.append(path)  # edited, and the version has it no more
            plan.problems.append((path, "edited"))
        else:
            plan.problems.append((path, self._why(path, kind, record)))

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

    def _why(self, path: str, kind: str, record: Written | None) -> str:
        if self.candidates(path, record):
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

    def made_by_cairn(self, folder: str) -> bool:
        """Whether cairn made `folder`: the marker has it, or something in it."""
        if self.marker is None:
            return False
        return folder in self._made or any(
            next(m.under(folder), None) is not None for m in self.incoming
        )


class Cursor(Generic[T]):
    """A stream of (key, item) in key order, looked up by keys in order: one side of a
    merge, holding one item at a time."""

    def __init__(self, items: Iterator[tuple[str, T]]) -> None:
        self._items = items
        self._key: str | None = None
        self._item: T | None = None
        self._next()

    def _next(self) -> None:
        self._key, self._item = next(self._items, (None, None))

    def at(self, key: str) -> T | None:
        """The item of `key`, or None; keys asked for must not go down."""
        while self._key is not None and self._key < key:
            self._next()
        return self._item if self._key == key else None

    def drain(self) -> None:
        while self._key is not None:
            self._next()


def _record(e: Entry, st: os.stat_result, mine: Written | None) -> Written:
    """The marker's record of entry `e`, found right at its path with stat `st`: the
    marker's record `mine` when it says exactly that, else a new one."""
    if e.kind != FILE:
        return Written(e.kind, target=e.target)
    if (
        mine is not None
        and mine.kind == FILE
        and mine.digest == e.digest
        and (mine.size, mine.mtime_ns, mine.ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    ):
        return mine
    return Written(FILE, e.digest, st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino)


def folders_of(entries: Iterable[Entry]) -> set[str]:
    """Every folder the entries need: their parents, and the empty-folder entries."""
    dirs: set[str] = set()
    for e in entries:
        _add_folder(dirs, e.path if e.kind == DIR else _parent(e.path))
    return dirs


def _add_folder(dirs: set[str], folder: str) -> None:
    """Add `folder` ('' for none) and its parents to `dirs`, where a folder's parents
    are wherever the folder is."""
    while folder and folder not in dirs:
        dirs.add(folder)
        folder = _parent(folder)


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _a(kind: str) -> str:
    return {"link": "a link", "file": "a file"}.get(kind, "something")


def hash_into(h: blake3.blake3, fd: int) -> None:
    while block := os.read(fd, 4 << 20):
        h.update(block)
