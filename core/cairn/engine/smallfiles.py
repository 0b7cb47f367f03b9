"""Many small files written into one folder, each whole before it has its name: the loop
a get of many small files spends its time in (cairn.engine.checkout).

Standard library only, and nothing from cairn: a get runs `place` in its own threads,
and also as helper processes (`python -I -S smallfiles.py`, see `serve` and
cairn.engine.helpers), each with an interpreter of its own, so that writing a hundred
thousand files is not held to one core by one interpreter's lock.

A file is written as an unnamed file of its folder (`O_TMPFILE`), then linked in under
its name, or, where a file is there already, under a temporary name renamed over it
(cairn.engine.confined says why). Nothing is ever written through a link: the folder is
a descriptor its caller opened without following any, and names are single components.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import marshal
import os
import socket
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

#: prefix of temporary names (cairn.engine.confined.TMP_PREFIX is this one)
TMP_PREFIX = ".cairn-tmp-"
#: ioctl FICLONE (linux/fs.h): make dst share src's blocks, copy-on-write
FICLONE = 0x40049409
# errors meaning "this way of copying is not available here": try the next one
UNSUPPORTED = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTTY, errno.EBADF}
)
_READ = os.O_RDONLY | os.O_CLOEXEC
_UNNAMED = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
#: whether unnamed files can be made and then linked in at all (Linux, with /proc)
CAN = bool(getattr(os, "O_TMPFILE", 0)) and os.path.isdir("/proc/self/fd")
_RUN = os.urandom(4).hex()
_COUNT = itertools.count()
#: the most bytes one request to a helper may take (names and paths of a part)
MESSAGE = 1 << 20

_T = TypeVar("_T")

#: what `place` returns per file, as written: (size, mtime_ns, inode)
Stamp = tuple[int, int, int]


class InTheWay(Exception):
    """A folder sits where a file is to be named (`args[0]`, the name)."""


class NoUnnamedFiles(Exception):
    """The folder's file system cannot make unnamed files; `args[0]` holds the stamps of
    the files placed before this was found out (the rest are not written)."""


class Copier:
    """Copies whole files in the kernel: a copy-on-write clone where the file system
    can, else copy_file_range, else sendfile, else reads and writes. A way refused once
    is the file system's answer for every file, and is not tried again."""

    def __init__(self) -> None:
        self.clone = True
        #: the kernel's ways of copying still worth trying, in order
        self.ways: list[Callable[[int, int, int], int]] = [_sendfile]
        if hasattr(os, "copy_file_range"):
            self.ways.insert(0, _copy_file_range)

    def copy(self, src: int, dst: int, size: int) -> None:
        """Copy the whole file `src` (`size` bytes) into the empty file `dst`."""
        if self.clone:
            try:
                fcntl.ioctl(dst, FICLONE, src)
                return
            except OSError as exc:
                if exc.errno not in UNSUPPORTED and exc.errno != errno.EPERM:
                    raise
                self.clone = False
        copied = 0
        for move in self.ways:
            try:
                while copied < size and (n := move(dst, src, size - copied)):
                    copied += n
                return
            except OSError as exc:
                if exc.errno not in UNSUPPORTED:
                    raise
                self.ways = [way for way in self.ways if way is not move]
        while copied < size and (block := os.pread(src, 4 << 20, copied)):
            view = memoryview(block)
            while view:
                n = os.pwrite(dst, view, copied)
                copied += n
                view = view[n:]


def _copy_file_range(dst: int, src: int, count: int) -> int:
    return os.copy_file_range(src, dst, count)


def _sendfile(dst: int, src: int, count: int) -> int:
    return os.sendfile(dst, src, None, count)


def place(dfd: int, files: Iterable[tuple[str, str, int]], copier: Copier) -> list[Stamp]:
    """Make each (name, source path, size) of `files` in folder `dfd` a copy of the file
    at `source`, whole before it has its name; return their stamps as written.

    Per file: open the source, open an unnamed file, copy, fstat, link it in, two
    closes. Raises NoUnnamedFiles (with the stamps so far) where the file system
    cannot make unnamed files, InTheWay for a folder where a file goes, OSError else.
    """
    out: list[Stamp] = []
    for name, source, size in files:
        src = os.open(source, _READ)
        try:
            st = write_unnamed(dfd, name, lambda fd: copier.copy(src, fd, size))  # noqa: B023
        except NoUnnamedFiles:
            raise NoUnnamedFiles(out) from None
        finally:
            os.close(src)
        out.append((st.st_size, st.st_mtime_ns, st.st_ino))
    return out


def write_unnamed(dfd: int, name: str, fill: Callable[[int], None]) -> os.stat_result:
    """Create `name` in folder `dfd` from `fill(fd)` as an unnamed file, linked in once
    whole; return its stat as written. NoUnnamedFiles where the file system cannot."""
    try:
        fd = os.open(".", _UNNAMED, 0o666, dir_fd=dfd)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise NoUnnamedFiles([]) from None
        raise
    try:
        fill(fd)
        st = os.fstat(fd)
        name_it(dfd, name, f"/proc/self/fd/{fd}")
        return st
    finally:
        os.close(fd)


def tmp_name() -> str:
    """A temporary name unique to this process, without asking the kernel per file."""
    return f"{TMP_PREFIX}{_RUN}{os.getpid():x}-{next(_COUNT):x}"


def name_it(dfd: int, name: str, source: str) -> None:
    """Give the whole file `source` (a /proc link to an unnamed file) the name `name`:
    directly if it is free, else under a temporary name renamed over what is there."""
    try:
        os.link(source, name, dst_dir_fd=dfd, follow_symlinks=True)
    except FileExistsError:
        put(dfd, name, lambda dfd, tmp: os.link(source, tmp, dst_dir_fd=dfd, follow_symlinks=True))


def put(dfd: int, name: str, make: Callable[[int, str], _T]) -> _T:
    """Make a new file or link under a temporary name in folder `dfd` with `make(dfd,
    tmp)`, then rename it over whatever file or link is at `name`: never a partial file
    under the final name. InTheWay for a folder at `name`."""
    tmp = tmp_name()
    try:
        made = make(dfd, tmp)
        try:
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            if isinstance(exc, IsADirectoryError) or exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise InTheWay(name) from None
            raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    return made


# -- the helper process ----------------------------------------------------------------------


def serve(sock: socket.socket) -> None:
    """Answer requests until the parent closes its end: each a folder's descriptor and
    marshalled [(name, source, size), ...]; each answer marshalled ("ok", stamps),
    ("unnamed", stamps), ("in the way", name) or ("error", errno, strerror, filename)."""
    copier = Copier()
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, MESSAGE, 1)
        if not msg:
            return
        dfd = fds[0]
        try:
            answer: tuple = ("ok", place(dfd, marshal.loads(msg), copier))
        except NoUnnamedFiles as exc:
            answer = ("unnamed", exc.args[0])
        except InTheWay as exc:
            answer = ("in the way", exc.args[0])
        except OSError as exc:
            answer = ("error", exc.errno or 0, exc.strerror or str(exc), exc.filename)
        finally:
            os.close(dfd)
        sock.sendall(marshal.dumps(answer))


def _die_with_parent(parent: int) -> None:
    """Be killed when the parent process ends (Linux): a get killed half way does not
    leave a helper writing files after it. Ctrl-C is the parent's to handle (it closes
    the sockets, and the helper ends), not a traceback from every helper."""
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


if __name__ == "__main__":
    _die_with_parent(int(sys.argv[2]))
    serve(socket.socket(fileno=int(sys.argv[1])))
