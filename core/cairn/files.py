"""Local file writes that are atomic (temp file + rename) and copies done in the kernel."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
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
