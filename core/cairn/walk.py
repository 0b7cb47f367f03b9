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
from dataclasses import dataclass, field

from .errors import CairnError, InvalidName
from .manifest import Entry
from .marker import MARKER
from .names import check_link_target, printable

_SHOWN = 5
#: longest path the system opens (PATH_MAX: 4096 bytes on Linux, the NUL included)
_PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096


@dataclass
class Walk:
    """Paths below the folder: files (path, local path), links and empty folders (as
    entries), and links that point outside (path, target) when not following them."""

    files: list[tuple[str, str]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    outside: list[tuple[str, str]] = field(default_factory=list)

    def refusal(self, folder: str) -> CairnError:
        n = len(self.outside)
        shown = ", ".join(f"{p} -> {t}" for p, t in self.outside[:_SHOWN])
        more = f" and {n - _SHOWN} more" if n > _SHOWN else ""
        links = "link points" if n == 1 else "links point"
        return CairnError(
            f"cannot add {folder}: {n} {links} outside the folder: {shown}{more}; remove "
            "them, or pass follow_links=True (--follow-links) to log what they point to"
        )


def walk(root: str, *, follow_links: bool = False) -> Walk:
    """Everything below the folder `root` (an absolute path), in path order."""
    out = Walk()
    top = os.stat(root)
    _Walker(root, out, follow_links).folder(root, "", followed=False, seen=(_key(top),))
    return out


class _Walker:
    def __init__(self, root: str, out: Walk, follow: bool):
        self.root = root
        self.real_root = os.path.realpath(root)
        self.out = out
        self.follow = follow

    def folder(
        self, local: str, rel: str, *, followed: bool, seen: tuple[tuple[int, int], ...]
    ) -> None:
        """Walk one folder; `followed`: reached through a link (everything in it is taken
        as bytes); `seen`: (device, inode) of the folders above when following links, so
        a link back to one of them is a cycle, cut."""
        try:
            with os.scandir(local) as it:
                found = sorted(it, key=lambda e: e.name)
        except PermissionError:
            raise CairnError(f"cannot add {local}: permission denied reading the folder") from None
        except OSError as exc:
            raise CairnError(f"cannot add {printable(local)}: {exc.strerror}") from None
        empty = True
        for e in found:
            inner = f"{rel}{e.name}"
            if len(e.path) * 4 >= _PATH_MAX and len(os.fsencode(e.path)) >= _PATH_MAX:
                raise CairnError(
                    f"cannot add {printable(inner)}: its local path is longer than the "
                    f"{_PATH_MAX} bytes this system can open; move the folder up or shorten "
                    "the names on the way"
                )
            if e.is_symlink():
                if not followed and self._link(e.path, inner):
                    empty = False
                    continue
                if not self.follow:
                    self.out.outside.append((inner, os.readlink(e.path)))
                    continue
                empty = self._follow(e.path, inner, seen) and empty
            elif e.is_dir(follow_symlinks=False):
                below = (*seen, _key(e.stat(follow_symlinks=False))) if self.follow else seen
                self.folder(e.path, f"{inner}/", followed=followed, seen=below)
                empty = False
            elif e.is_file(follow_symlinks=False) and e.name != MARKER:
                self.out.files.append((inner, e.path))
                empty = False
        if empty and rel:
            self.out.entries.append(Entry.folder(rel.rstrip("/")))

    def _link(self, local: str, inner: str) -> bool:
        """Record the link at `local` if it stays inside the folder; False if it does not."""
        target = self._inside(local, inner)
        if target is None:
            return False
        self.out.entries.append(Entry.link(inner, target))
        return True

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

    def _follow(self, local: str, inner: str, seen: tuple[tuple[int, int], ...]) -> bool:
        """Log what the link at `local` points to; True if that is nothing (a cycle, a
        socket...), so its folder may still be empty."""
        try:
            st = os.stat(local)
        except OSError:
            raise CairnError(
                f"cannot add {inner}: it is a link to {os.readlink(local)}, which does not exist"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            if _key(st) in seen:
                return True  # a cycle: the folder is being walked already
            self.folder(local, f"{inner}/", followed=True, seen=(*seen, _key(st)))
            return False
        if stat.S_ISREG(st.st_mode):
            self.out.files.append((inner, local))
            return False
        return True


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
