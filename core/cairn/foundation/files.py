"""Local files: atomic writes (temp file + rename), copies done in the kernel, SQLite WAL."""

from __future__ import annotations

import contextlib
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
