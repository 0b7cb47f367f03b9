"""What a local folder holds, as `Artifact.add_dir` logs it: files, links, empty folders.

A symbolic link whose target stays inside the folder is kept as a link (its target made
relative, names.check_link_target); one that points outside is refused, or with
`follow_links` replaced by what it points to (a file's bytes, a folder's content,
cycles cut). Empty folders are kept. Sockets, fifos and devices have no bytes to log and
are skipped; cairn's checkout markers are local state, never data.
"""

from __future__ import annotations

import os
import posixpath
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..foundation.errors import CairnError, InvalidName
from ..foundation.manifest import Entry
from ..foundation.names import check_link_target, join_path, printable
from .marker import MARKER

_SHOWN = 5
#: a folder of at most this many files keeps the list its check made for its log, which
#: lists the folder again only if one of its folders changed since (about 200 bytes a
#: file: at most about 4 MB; a larger folder is listed again at the log, as a stream)
REMEMBERED = 20_000
#: a folder changed this recently may change again within the same time stamp (file
#: systems keep coarse clocks): a listing holding one is not kept
_RACY_NS = 2_000_000_000
#: longest path the system opens (PATH_MAX: 4096 bytes on Linux, the NUL included)
_PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096


#: what the walk finds, in path order: a file (path, local path), a link or an empty
#: folder (an entry), or a link that points outside (path, target) when not following
File = tuple[str, str]


@dataclass(frozen=True)
class Outside:
    """A link at `path` whose `target` leaves the folder (refused unless following links)."""

    path: str
    target: str


Found = File | Entry | Outside
#: what says a folder's entries are as they were: (device, inode, mtime, ctime)
FolderStamp = tuple[int, int, int, int]


@dataclass
class Listing:
    """A folder's files as its check found them (logical path, local path), with the stamp
    every folder in it had before it was read. While no stamp changed the files are the
    same ones: adding, removing or renaming a file changes its folder's modification
    time. (A file's content is not vouched for: the log stats every file.)"""

    files: list[File] = field(default_factory=list)
    folders: list[tuple[str, FolderStamp]] = field(default_factory=list)
    #: False once the folder holds more than REMEMBERED files (or a folder is unreadable)
    keeping: bool = True

    def keep(self, path: str, local: str) -> None:
        self.files.append((path, local))
        if len(self.files) > REMEMBERED:
            self.drop()

    def stamp(self, local: str) -> None:
        try:
            self.folders.append((local, _stamp(os.stat(local))))
        except OSError:
            self.drop()  # the walk reports it

    def drop(self) -> None:
        self.keeping = False
        self.files.clear()
        self.folders.clear()

    def settled(self, since_ns: int) -> bool:
        """Whether no folder changed within `_RACY_NS` before `since_ns` (its stamp could
        then miss a change made in the same clock tick)."""
        newest = max((max(s[2], s[3]) for _, s in self.folders), default=0)
        return newest < since_ns - _RACY_NS

    def current(self) -> bool:
        """Whether every folder still has the stamp it had when the check read it."""
        for local, was in self.folders:
            try:
                if _stamp(os.stat(local)) != was:
                    return False
            except OSError:
                return False
        return True


@dataclass
class Walk:
    """What a checking walk of a folder kept: its links and empty folders (as entries),
    how many files it holds, and the links that point outside (the first few shown)."""

    files: int = 0
    entries: list[Entry] = field(default_factory=list)
    outside: list[tuple[str, str]] = field(default_factory=list)
    outside_count: int = 0
    #: its files, for the log, when it holds few and is not followed through links and
    #: no folder in it has just changed (None: the log walks it again)
    listing: Listing | None = None

    def refusal(self, folder: str) -> CairnError:
        n = self.outside_count
        shown = ", ".join(f"{p} -> {t}" for p, t in self.outside[:_SHOWN])
        more = f" and {n - _SHOWN} more" if n > _SHOWN else ""
        links = "link points" if n == 1 else "links point"
        return CairnError(
            f"cannot add {folder}: {n} {links} outside the folder: {shown}{more}; remove "
            "them, or pass follow_links=True (--follow-links) to log what they point to"
        )


def walk(root: str, *, follow_links: bool = False, prefix: str | None = None) -> Walk:
    """Check the folder `root` (an absolute path): its links and empty folders, the links
    that point outside, and every file's name (InvalidName, under `prefix`); files are
    counted and not stat'ed (the log stats them), kept only in a small folder's
    `Listing` (a larger one the log walks again, `found`)."""
    out = Walk()
    started = time.time_ns()
    listing = None if follow_links else Listing()
    for item in _Walker(root, follow_links, listing).top():
        if isinstance(item, Entry):
            out.entries.append(item)
        elif isinstance(item, Outside):
            out.outside_count += 1
            if len(out.outside) < _SHOWN:
                out.outside.append((item.path, item.target))
        else:
            path = join_path(prefix, item[0])  # a name it cannot log is refused now
            out.files += 1
            if listing is not None and listing.keeping:
                listing.keep(path, item[1])
    if listing is not None and listing.keeping and listing.settled(started):
        out.listing = listing
    return out


def found(root: str, *, follow_links: bool = False) -> Iterator[Found]:
    """Everything below the folder `root` (an absolute path), as a stream: files and links
    in strictly increasing path order (the manifest's), an empty folder's entry where its
    folder sorts (as `name/`). Memory is one folder's listing per level of depth, never
    the whole tree."""
    return _Walker(root, follow_links).top()


class _Walker:
    def __init__(self, root: str, follow: bool, listing: Listing | None = None):
        self.root = root
        self.real_root = os.path.realpath(root)
        self.follow = follow
        #: where the folders' stamps go, before each is read (a check's walk)
        self.listing = listing

    def top(self) -> Iterator[Found]:
        return self.folder(self.root, "", followed=False, seen=(_key(os.stat(self.root)),))

    def folder(
        self, local: str, rel: str, *, followed: bool, seen: tuple[tuple[int, int], ...]
    ) -> Iterator[Found]:
        """Walk one folder; `followed`: reached through a link (everything in it is taken
        as bytes); `seen`: (device, inode) of the folders above when following links, so
        a link back to one of them is a cycle, cut. Children are taken in the order of
        their paths: a folder `a` sorts as `a/`, after `a-b` and before `a0`."""
        if self.listing is not None and self.listing.keeping:
            self.listing.stamp(local)
        try:
            with os.scandir(local) as it:
                children = [self._classify(e, f"{rel}{e.name}", followed) for e in it]
        except PermissionError:
            raise CairnError(f"cannot add {local}: permission denied reading the folder") from None
        except OSError as exc:
            raise CairnError(f"cannot add {printable(local)}: {exc.strerror}") from None
        children.sort(key=_order)
        empty = True
        for _, e, what, extra in children:
            inner = f"{rel}{e.name}"
            if what == _FILE:
                yield (inner, e.path)
                empty = False
            elif what == _DIR:
                below = (*seen, _key(e.stat(follow_symlinks=False))) if self.follow else seen
                yield from self.folder(e.path, f"{inner}/", followed=followed, seen=below)
                empty = False
            elif what == _LINK:
                yield Entry.link(inner, extra)
                empty = False
            elif what == _OUTSIDE:
                yield Outside(inner, extra)
            elif what == _FOLLOW_DIR:
                st = os.stat(e.path)
                if _key(st) in seen:
                    continue  # a cycle: the folder is being walked already
                yield from self.folder(e.path, f"{inner}/", followed=True, seen=(*seen, _key(st)))
                empty = False
            elif what == _FOLLOW_FILE:
                yield (inner, e.path)
                empty = False
        if empty and rel:
            yield Entry.folder(rel.rstrip("/"))

    def _classify(self, e: os.DirEntry[str], inner: str, followed: bool) -> _Child:
        """What a child is, and the key it sorts by (its name, `/` after a folder's)."""
        if len(e.path) * 4 >= _PATH_MAX and len(os.fsencode(e.path)) >= _PATH_MAX:
            raise CairnError(
                f"cannot add {printable(inner)}: its local path is longer than the "
                f"{_PATH_MAX} bytes this system can open; move the folder up or shorten "
                "the names on the way"
            )
        if e.is_symlink():
            if not followed:
                target = self._inside(e.path, inner)
                if target is not None:
                    return (e.name, e, _LINK, target)
            if not self.follow:
                return (e.name, e, _OUTSIDE, os.readlink(e.path))
            try:
                st = os.stat(e.path)
            except OSError:
                raise CairnError(
                    f"cannot add {inner}: it is a link to {os.readlink(e.path)}, which does "
                    "not exist"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                return (e.name + "/", e, _FOLLOW_DIR, "")
            if stat.S_ISREG(st.st_mode):
                return (e.name, e, _FOLLOW_FILE, "")
            return (e.name, e, _SKIP, "")
        if e.is_dir(follow_symlinks=False):
            return (e.name + "/", e, _DIR, "")
        if e.is_file(follow_symlinks=False) and e.name != MARKER:
            return (e.name, e, _FILE, "")
        return (e.name, e, _SKIP, "")

    def _inside(self, local: str, inner: str) -> str | None:
        """The link's target, relative and canonical, if it stays inside; else None.

        The target as written is kept when it is canonical (absolute ones inside the
        folder made relative); otherwise the link's resolution on disk decides.
        """
        raw = os.readlink(local)
        here = posixpath.dirname(local)
        if raw.startswith("/"):
            lexical = posixpath.normpath(raw)
            candidate = posixpath.relpath(lexical, here) if _below(lexical, self.root) else None
        else:
            candidate = "/".join(p for p in raw.split("/") if p not in ("", "."))
        if candidate is not None and _canonical(inner, candidate):
            return candidate
        real = os.path.realpath(local)
        if not _below(real, self.real_root) or real == self.real_root:
            return None
        real_here = posixpath.join(self.real_root, posixpath.dirname(inner))
        candidate = posixpath.relpath(real, real_here)
        return candidate if _canonical(inner, candidate) else None


_FILE, _DIR, _LINK, _OUTSIDE, _FOLLOW_DIR, _FOLLOW_FILE, _SKIP = range(7)
#: (sort key, the directory entry, what it is, the link target when it is one)
_Child = tuple[str, "os.DirEntry[str]", int, str]


def _order(child: _Child) -> str:
    return child[0]


def _stamp(st: os.stat_result) -> FolderStamp:
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _below(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _canonical(inner: str, target: str) -> bool:
    try:
        check_link_target(inner, target)
    except InvalidName:
        return False
    return True
