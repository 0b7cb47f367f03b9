"""What a get finds in its folder, and what it will change there (cairn.engine.checkout).

A path is cairn's when the marker records it (or an interrupted get was writing it) and
it is unmodified; a path that already holds what the version has is kept, whoever wrote
it; anything else the get would touch is a problem, reported before anything changes
(docs/FORMAT.md, "Checkouts", rule 2).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain

import blake3

from ..foundation.errors import Conflict, NotFound
from ..foundation.manifest import DIR, FILE, LINK, Entry, Manifest
from .cache import Cache
from .confined import TMP_PREFIX, ConfinedDir, kind_of
from .marker import MARKER, Marker, Written

#: manifest digest -> the manifest (NotFound if the catalog no longer has it)
Load = Callable[[str], Manifest]
_SHOWN = 5  # paths an error names; the rest are counted


@dataclass(frozen=True)
class Target:
    """The version checked out: `ref` names it exactly, `digest` is its manifest's."""

    ref: str
    project: str
    collection: str
    version: str
    digest: str


@dataclass
class Plan:
    """What a get will do, decided before anything changes: what is in the folder and
    must go or stay. Every other file and link of the version is written."""

    remove: list[str] = field(default_factory=list)  # files and links, or folders in the way
    #: right already, with the marker's record of each (the marker's own where it holds
    #: that very stamp: an update of a million unchanged files makes no new record)
    kept: dict[str, Written] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why) for the error
    strays: list[str] = field(default_factory=list)  # folders the version does not have


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
        # it once; into another, once more first, for its folders (to judge what is in
        # the way)
        self.wanted_dirs: set[str] | None = None
        self.marker, self.other = self._read_marker()
        self.incoming = self._incoming_manifests(load)
        self._digests: dict[str, str] = {}  # path -> digest hashed from disk this run
        self._made: set[str] | None = None  # folders the marker has, or has paths in

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

    def candidates(self, path: str) -> list[Written]:
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
        return bool(self.candidates(path))

    def _mine(self, path: str, st: os.stat_result) -> Written | None:
        """What cairn wrote at `path`, if the file or link there is still exactly that."""
        if self.marker is None:
            return None
        kind = kind_of(st)
        for w in self.candidates(path):
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
        plan = Plan()
        if self.other is not None and not self.other.startswith("is a checkout"):
            plan.problems.append((MARKER, "not cairn's marker"))
        found = (item for item in self.folder.walk() if item[0] != MARKER)
        first = next(found, None)
        if first is None:
            return plan  # nothing in the way: the folders are made as the files come
        self.wanted_dirs = folders_of(self.manifest.stream())
        for path, st in chain([first], found):
            self._judge(plan, path, st)
        return plan

    def _judge(self, plan: Plan, path: str, st: os.stat_result) -> None:
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
                    plan.kept[path] = _record(e, st, mine)
                return  # else a hardlink of the cache becomes a copy
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

    def made_by_cairn(self, folder: str) -> bool:
        """Whether cairn made `folder`: the marker has it, or something in it."""
        if self.marker is None:
            return False
        if self._made is None:
            self._made = set()
            for p in self.marker.paths():
                if any(w.kind == DIR for w in self.marker.candidates(p)):
                    self._made.add(p)
                while "/" in p:
                    p = p.rsplit("/", 1)[0]
                    self._made.add(p)
        return folder in self._made or any(
            next(m.under(folder), None) is not None for m in self.incoming
        )


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
        p = e.path if e.kind == DIR else e.path.rpartition("/")[0]
        while p and p not in dirs:  # a folder's parents were added with it
            dirs.add(p)
            p = p.rpartition("/")[0]
    return dirs


def _a(kind: str) -> str:
    return {"link": "a link", "file": "a file"}.get(kind, "something")


def _read_all(fd: int) -> bytes:
    # the whole file in one read where the kernel allows: one copy of a large marker
    chunks = []
    want = max(1 << 20, os.fstat(fd).st_size + 1)
    while block := os.read(fd, want):
        chunks.append(block)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def hash_into(h: blake3.blake3, fd: int) -> None:
    while block := os.read(fd, 4 << 20):
        h.update(block)
