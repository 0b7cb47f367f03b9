"""Local files: atomic writes (temp file + rename), copies done in the kernel, SQLite WAL."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic_file(path: str, *, mode: int = 0o444) -> Iterator[IO[bytes]]:
    """Write `path` through a temp file in its folder, renamed into place on success.

    Rename last: a crash or an error before it leaves at most a `.tmp-` file, never a
    short file under the final name.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_into(source: str, dst: IO[bytes]) -> None:
    """Copy a whole file into an open file, in the kernel where it can."""
    with open(source, "rb") as src:
        if not hasattr(os, "copy_file_range"):
            shutil.copyfileobj(src, dst, 4 << 20)
            return
        dst.flush()
        size = os.fstat(src.fileno()).st_size
        copied = 0
        while copied < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied)
            if n == 0:
                break
            copied += n


# ioctl FICLONE (linux/fs.h): make dst share src's blocks, copy-on-write
FICLONE = 0x40049409
# errors meaning "this way of copying is not available here": try the next one
_UNSUPPORTED = {
    errno.EXDEV,
    errno.ENOSYS,
    errno.EINVAL,
    errno.EOPNOTSUPP,
    errno.ENOTTY,
    errno.EBADF,
}


def clone_fd(src: int, dst: int) -> bool:
    """Make the empty file `dst` a copy-on-write clone of `src` (a reflink, on btrfs, XFS,
    bcachefs...); False where the file system cannot (ext4, or two file systems)."""
    try:
        fcntl.ioctl(dst, FICLONE, src)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED or exc.errno == errno.EPERM:
            return False
        raise
    return True


def copy_fd(src: int, dst: int, size: int | None = None) -> None:
    """Copy the whole file `src` (`size` bytes, if known) into the empty file `dst`, both
    at offset 0: in the kernel (copy_file_range, else sendfile; each advances the files'
    own offsets, as `cp` calls them) where it can, by reads and writes otherwise."""
    if size is None:
        size = os.fstat(src).st_size
    copied = 0
    for move in (_copy_file_range, _sendfile):
        try:
            while copied < size:
                n = move(dst, src, size - copied)
                if n == 0:
                    break
                copied += n
            return
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
    while copied < size and (block := os.pread(src, 4 << 20, copied)):
        view = memoryview(block)
        while view:
            n = os.pwrite(dst, view, copied)
            copied += n
            view = view[n:]


def _copy_file_range(dst: int, src: int, count: int) -> int:
    if not hasattr(os, "copy_file_range"):  # not Linux
        raise OSError(errno.ENOSYS, "copy_file_range is not available")
    return os.copy_file_range(src, dst, count)


def _sendfile(dst: int, src: int, count: int) -> int:
    return os.sendfile(dst, src, None, count)


def use_wal(db: sqlite3.Connection | sqlite3.Cursor, *, attempts: int = 200) -> None:
    """Put a SQLite database in WAL mode.

    Switching needs the database to itself and SQLite may answer "database is locked"
    at once, without waiting out its busy timeout, when several processes or threads
    open a new database together: try again a little later.
    """
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (1 + attempt % 10))
