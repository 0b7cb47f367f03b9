"""What a local folder holds, as `Artifact.add_dir` logs it: files, links, empty folders.

A symbolic link whose target stays inside the folder is kept as a link (its target made
relative, names.check_link_target); one that points outside is refused, or with
`follow_links` replaced by what it points to (a file's bytes, a folder's content,
cycles cut). Empty folders are kept. Sockets, fifos and devices have no bytes to log and
are skipped; cairn's checkout markers are local state, never data.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..foundation.errors import CairnError, InvalidName
from ..foundation.manifest import Entry
from ..foundation.names import check_link_target, join_path, printable
from .marker import MARKER

_SHOWN = 5
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


@dataclass
class Walk:
    """What a checking walk of a folder kept: its links and empty folders (as entries),
    how many files it holds, and the links that point outside (the first few shown)."""

    files: int = 0
    #: their bytes (at the walk: what a progress bar of the log expects)
    bytes: int = 0
    entries: list[Entry] = field(default_factory=list)
    outside: list[tuple[str, str]] = field(default_factory=list)
    outside_count: int = 0

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
    counted, not kept (the log walks again, `found`)."""
    out = Walk()
    for item in found(root, follow_links=follow_links):
        if isinstance(item, Entry):
            out.entries.append(item)
        elif isinstance(item, Outside):
            out.outside_count += 1
            if len(out.outside) < _SHOWN:
                out.outside.append((item.path, item.target))
        else:
            join_path(prefix, item[0])  # a name it cannot log is refused now
            out.files += 1
            # a file gone already is reported when the log reads the folder again
            with contextlib.suppress(OSError):
                out.bytes += os.stat(item[1]).st_size
    return out


def found(root: str, *, follow_links: bool = False) -> Iterator[Found]:
    """Everything below the folder `root` (an absolute path), as a stream: files and links
    in strictly increasing path order (the manifest's), an empty folder's entry where its
    folder sorts (as `name/`). Memory is one folder's listing per level of depth, never
    the whole tree."""
    top = os.stat(root)
    return _Walker(root, follow_links).folder(root, "", followed=False, seen=(_key(top),))


class _Walker:
    def __init__(self, root: str, follow: bool):
        self.root = root
        self.real_root = os.path.realpath(root)
        self.follow = follow

    def folder(
        self, local: str, rel: str, *, followed: bool, seen: tuple[tuple[int, int], ...]
    ) -> Iterator[Found]:
        """Walk one folder; `followed`: reached through a link (everything in it is taken
        as bytes); `seen`: (device, inode) of the folders above when following links, so
        a link back to one of them is a cycle, cut. Children are taken in the order of
        their paths: a folder `a` sorts as `a/`, after `a-b` and before `a0`."""
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
