"""A local folder every path below which is reached from its descriptor, never through a link.

A checkout writes only below the folder the user named. Path strings would be resolved
by the kernel on every call, following any symbolic link a user (or a racing process)
put on the way; here each folder is opened relative to its parent's descriptor with
`O_NOFOLLOW | O_DIRECTORY`, files are created `O_EXCL | O_NOFOLLOW` under a temporary
name and renamed within one folder descriptor, and links are removed, never followed.
A link or a file where a folder should be is an error naming it (`Blocked`), whoever
put it there and whenever.

A new file gets its name only once it is whole: a small one written as an unnamed file
of its folder (`O_TMPFILE`) and then linked under its name (a directory entry less to
make and remove), others, or where that cannot be done or a file is there already,
written under a temporary name and renamed over it. Hardlinks
and symbolic links are complete when made, so a free name takes them directly. A
`Pinned` folder holds a descriptor of its own, so several threads write into their
folders at once (the `ConfinedDir` itself is for one thread).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..foundation.errors import CairnError
from . import smallfiles
from .smallfiles import (
    TMP_PREFIX,
    Copier,
    InTheWay,
    NoUnnamedFiles,
    Stamp,
    place,
    put,
    write_unnamed,
)

if TYPE_CHECKING:
    from .helpers import Helpers

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_CLOEXEC
_OPEN_DIRS = 64  # folder descriptors kept open (paths are visited in sorted order)
# an unnamed file in a folder, given a name once written (Linux; linked via /proc)
_TMPFILE = smallfiles.CAN


class Blocked(CairnError):
    """Something other than a folder (a file, a link) sits where a folder should be."""

    def __init__(self, path: str, what: str):
        super().__init__(f"{path} is {what}; cairn never writes through links or files")
        self.path = path


def kind_of(st: os.stat_result) -> str:
    """'file', 'link', 'dir' or 'other' (sockets, fifos, devices), from an lstat."""
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "other"


class ConfinedDir:
    """The folder at `path` (which may be reached through links: the user named it) and
    everything below it, reached without following any link."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except NotADirectoryError:
            raise CairnError(f"{path} is not a folder") from None
        except OSError as exc:
            raise CairnError(f"cannot open {path}: {exc.strerror}") from None
        self._dirs: OrderedDict[str, int] = OrderedDict()
        self._pin_lock = threading.Lock()

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        os.close(self._fd)

    def __enter__(self) -> ConfinedDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders ---------------------------------------------------------------------------

    def folder(self, rel: str, *, create: bool = False) -> int:
        """Descriptor of folder `rel` ('' for the root), made if missing when `create`.

        Opened one name at a time from the root's descriptor, so a link anywhere on the
        way raises Blocked instead of being followed.
        """
        if not rel:
            return self._fd
        fd = self._dirs.get(rel)
        if fd is not None:
            self._dirs.move_to_end(rel)
            return fd
        parent, _, name = rel.rpartition("/")
        pfd = self.folder(parent, create=create)
        fd = self._open_dir(pfd, rel, name, create)
        self._dirs[rel] = fd
        if len(self._dirs) > _OPEN_DIRS:
            # never the folder just opened nor its parent: both may be in use
            for old in list(self._dirs)[: len(self._dirs) - _OPEN_DIRS]:
                if old not in (rel, parent):
                    os.close(self._dirs.pop(old))
        return fd

    def _open_dir(self, pfd: int, rel: str, name: str, create: bool) -> int:
        for _ in range(3):
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=pfd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=pfd)
            except (NotADirectoryError, OSError) as exc:
                if isinstance(exc, NotADirectoryError) or exc.errno == errno.ELOOP:
                    raise Blocked(rel, self._what(pfd, name)) from None
                raise
        raise Blocked(rel, "changing while cairn writes")

    def _what(self, pfd: int, name: str) -> str:
        try:
            kind = kind_of(os.stat(name, dir_fd=pfd, follow_symlinks=False))
        except OSError:
            return "not a folder"
        return {"link": "a link", "file": "a file"}.get(kind, "not a folder")

    def _dir_and_name(self, rel: str) -> tuple[int, str]:
        parent, _, name = rel.rpartition("/")
        return self.folder(parent), name

    # -- reading ---------------------------------------------------------------------------

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry at `rel` itself (a link is not followed), or None if there is none."""
        try:
            fd, name = self._dir_and_name(rel)
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, Blocked):
            return None

    def readlink(self, rel: str) -> str:
        fd, name = self._dir_and_name(rel)
        return os.readlink(name, dir_fd=fd)

    def open(self, rel: str) -> int:
        """A descriptor of the file at `rel` for reading, opened without following a link
        (the caller's to close)."""
        dfd, name = self._dir_and_name(rel)
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)

    def read(self, rel: str, consume: Callable[[int], object]) -> None:
        """Call `consume(fd)` on the regular file at `rel`, opened without following a link."""
        fd = self.open(rel)
        try:
            consume(fd)
        finally:
            os.close(fd)

    def walk(self, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
        """(path, lstat) of everything below folder `rel`, in path order as a manifest
        sorts paths (a folder's contents come where its name and a '/' sort: `a`,
        `a.txt`, `a/b`); links are reported, never entered. A folder holds its names
        while it is walked, never their stats: a million files in one folder are a
        million names."""
        try:
            fd = self.folder(rel)
        except (FileNotFoundError, Blocked):
            return
        keys = []  # a file's name; a folder's name, and its name and "/" for its contents
        folders: set[str] = set()
        with os.scandir(fd) as it:  # scandir reads a duplicate of fd and closes that
            for e in it:
                try:
                    folder = e.is_dir(follow_symlinks=False)
                except FileNotFoundError:  # gone since it was listed
                    continue
                keys.append(e.name)
                if folder:
                    keys.append(e.name + "/")
                    folders.add(e.name)
        keys.sort()
        for key in keys:
            if key.endswith("/"):  # a folder's contents
                yield from self.walk(f"{rel}/{key[:-1]}" if rel else key[:-1])
                continue
            path = f"{rel}/{key}" if rel else key
            try:
                # the folder's descriptor is looked up again: walking a child may have
                # closed it (_OPEN_DIRS)
                st = os.stat(key, dir_fd=self.folder(rel), follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode) != (key in folders):
                # listed as one kind, found as another: it changed under the walk
                raise OSError(errno.EISDIR, "changed while cairn read the folder", path)
            yield path, st

    # -- writing ---------------------------------------------------------------------------

    def write(
        self, rel: str, fill: Callable[[int], None], *, small: bool = False
    ) -> os.stat_result:
        """Create the file `rel` from `fill(fd)`. Returns its stat as written. `small`:
        a few pages at most, written as an unnamed file then linked in (cheaper for a
        small file; a large one is written faster under a temporary name)."""
        dfd, name = self._dir_and_name(rel)
        return _write(dfd, name, rel, fill, small)

    def hardlink(self, rel: str, source: str) -> os.stat_result:
        """Make `rel` another name of the file at `source` (an absolute path outside)."""
        dfd, name = self._dir_and_name(rel)
        return _hardlink(dfd, name, rel, source)

    def symlink(self, rel: str, target: str) -> os.stat_result:
        """Make `rel` a symbolic link to `target` (the link is made, never followed)."""

        def make(dfd: int, tmp: str) -> os.stat_result:
            os.symlink(target, tmp, dir_fd=dfd)
            return os.stat(tmp, dir_fd=dfd, follow_symlinks=False)

        dfd, name = self._dir_and_name(rel)
        return _put(dfd, name, rel, make)

    def pin(self, rel: str) -> Pinned:
        """Folder `rel` (made if missing) with a descriptor of its own, for a thread that
        writes files into it while others write into theirs; close it when done."""
        with self._pin_lock:
            return Pinned(os.dup(self.folder(rel, create=True)), rel)

    def mkdir(self, rel: str) -> None:
        """Make the folder `rel` (and its parents) if missing; safe beside `pin`s."""
        with self._pin_lock:
            self.folder(rel, create=True)

    def remove(self, rel: str) -> None:
        """Remove the file or link at `rel` (a link itself, never what it points to), or a
        whole folder there; nothing if it is gone already."""
        for key in [k for k in self._dirs if k == rel or k.startswith(rel + "/")]:
            os.close(self._dirs.pop(key))
        dfd, name = self._dir_and_name(rel)
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            # fd-based: never follows a link inside the folder (shutil.avoids_symlink_attacks)
            shutil.rmtree(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)

    def rmdir(self, rel: str) -> bool:
        """Remove folder `rel` if it is empty; True if it went."""
        if rel in self._dirs:
            os.close(self._dirs.pop(rel))
        try:
            dfd, name = self._dir_and_name(rel)
            os.rmdir(name, dir_fd=dfd)
        except (OSError, Blocked):
            return False
        return True

    def fsync(self, rel: str = "") -> None:
        os.fsync(self.folder(rel))

    def case_insensitive(self) -> bool:
        """Whether the folder's file system takes names that differ only by case for one
        (macOS and Windows by default, ext4 folders with casefolding): probed with a
        temporary file, removed at once. False when the probe cannot be made."""
        name = f"{TMP_PREFIX}case-{secrets.token_hex(8)}"  # lower case: hex digits
        try:
            os.close(os.open(name, _NEW_FILE, 0o600, dir_fd=self._fd))
        except OSError:
            return False
        try:
            os.stat(name.upper(), dir_fd=self._fd, follow_symlinks=False)
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._fd)
        return True

    def lock(self) -> None:
        """Wait for, then hold until close, the folder's exclusive lock (flock): two gets
        into one folder (mapped tasks on one worker) take turns instead of racing."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)


class Pinned:
    """One folder below a ConfinedDir, reached as it was (no link followed) and held by a
    descriptor of its own: files are written into it by name, whatever the ConfinedDir's
    other threads do meanwhile."""

    def __init__(self, fd: int, rel: str):
        self.fd = fd
        self.rel = rel

    def _rel(self, name: str) -> str:
        return f"{self.rel}/{name}" if self.rel else name

    def write(
        self, name: str, fill: Callable[[int], None], *, small: bool = False
    ) -> os.stat_result:
        """Create the file `name` in this folder from `fill(fd)` (ConfinedDir.write)."""
        return _write(self.fd, name, self._rel(name), fill, small)

    def hardlink(self, name: str, source: str) -> os.stat_result:
        """Make `name` another name of the file at `source` (ConfinedDir.hardlink)."""
        return _hardlink(self.fd, name, self._rel(name), source)

    def copy_small(
        self,
        files: list[tuple[str, str, int]],
        copier: Copier,
        helpers: Helpers | None = None,
    ) -> list[Stamp]:
        """Make each (name, source path, size) of `files`, small files all, a copy of the
        file at `source`, and return their stamps (size, mtime_ns, inode) as written.
        Each is whole before it has its name, as `write(small=True)` makes it: the loop
        of cairn.engine.smallfiles, by a helper process if `helpers` are given."""
        global _TMPFILE
        done: list[Stamp] = []
        if _TMPFILE:
            try:
                if helpers is not None:
                    return helpers.place(self.fd, self.rel, files)
                return place(self.fd, files, copier)
            except NoUnnamedFiles as exc:
                done = exc.args[0]
                _TMPFILE = False  # the file system cannot: temporary names from now on
            except InTheWay as exc:
                raise Blocked(self._rel(exc.args[0]), "a folder") from None
        for name, source, size in files[len(done) :]:
            src = os.open(source, _READ)
            try:
                st = self.write(name, lambda dst: copier.copy(src, dst, size))  # noqa: B023
            finally:
                os.close(src)
            done.append((st.st_size, st.st_mtime_ns, st.st_ino))
        return done

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write(
    dfd: int, name: str, rel: str, fill: Callable[[int], None], small: bool
) -> os.stat_result:
    """Create `name` in folder `dfd` from `fill(fd)`: never a partial file under `name`."""
    global _TMPFILE
    if small and _TMPFILE:
        try:
            return write_unnamed(dfd, name, fill)
        except NoUnnamedFiles:
            _TMPFILE = False  # the file system cannot: temporary names from now on
        except InTheWay:
            raise Blocked(rel, "a folder") from None

    def make(dfd: int, tmp: str) -> os.stat_result:
        fd = os.open(tmp, _NEW_FILE, 0o666, dir_fd=dfd)
        try:
            fill(fd)
            return os.fstat(fd)
        finally:
            os.close(fd)

    return _put(dfd, name, rel, make)


def _hardlink(dfd: int, name: str, rel: str, source: str) -> os.stat_result:
    """Make `name` in folder `dfd` a hardlink of `source` (whole as soon as it exists)."""
    try:
        os.link(source, name, dst_dir_fd=dfd, follow_symlinks=False)
    except FileExistsError:

        def make(dfd: int, tmp: str) -> os.stat_result:
            os.link(source, tmp, dst_dir_fd=dfd, follow_symlinks=False)
            return os.stat(tmp, dir_fd=dfd, follow_symlinks=False)

        return _put(dfd, name, rel, make)
    return os.stat(name, dir_fd=dfd, follow_symlinks=False)


def _put(
    dfd: int, name: str, rel: str, make: Callable[[int, str], os.stat_result]
) -> os.stat_result:
    """smallfiles.put (a temporary name renamed over `name`), a folder in the way
    reported as Blocked (naming `rel`)."""
    try:
        return put(dfd, name, make)
    except InTheWay:
        raise Blocked(rel, "a folder") from None


def make_folder(path: str) -> ConfinedDir:
    """Open the folder at absolute `path`, making it and missing parents first.

    The path the user named may pass through links (it is theirs to choose); only what
    is below it is confined. Failures are one clear CairnError naming the part of the
    path that could not be made or is not a folder.
    """
    parts = path.rstrip("/").split("/")
    for i in range(2, len(parts) + 1):
        here = "/".join(parts[:i])
        try:
            os.mkdir(here)
        except FileExistsError:
            if not os.path.isdir(here):
                what = "a link to nothing" if os.path.islink(here) else "not a folder"
                raise CairnError(f"cannot create {path}: {here} is {what}") from None
        except OSError as exc:
            if exc.errno == errno.EISDIR or os.path.isdir(here):
                continue
            raise CairnError(f"cannot create {path}: cannot make {here} ({exc.strerror})") from None
    return ConfinedDir(path)
