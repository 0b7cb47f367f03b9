"""Writing a large object around the page cache (O_DIRECT), where the file system allows it.

A buffered write copies every byte into the page cache, and the kernel later spends as
much again writing those pages back and dropping them: for a 1 GiB first log that is
the largest single cost after hashing. With O_DIRECT the disk reads the bytes from
our own memory. The kernel wants the memory, the file offset and the length aligned
to the device's block size, which a chunk cut anywhere in a file's buffer is not: the
bytes go through an aligned buffer of this thread's (a copy in user space, far cheaper
than a page-cache write), and the last partial block is written through the page cache.
Every direct write waits for the device, though: the local store writes the first
512 MiB between syncs through the page cache (local.DIRECT_AFTER), which the sync then
writes back at full speed, and only what comes after around it.

Nothing here makes the bytes durable: the data is on the device but perhaps in its
volatile cache, and the file's size and blocks are in the journal. The store's `sync`
(syncfs) flushes both, as it does for buffered writes.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading

#: alignment of memory, offsets and lengths: the largest logical block size in use
ALIGN = 4096
#: each thread's aligned buffer; also the size of one write
_BOUNCE = 4 << 20
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_local = threading.local()


def available() -> bool:
    """Whether this platform has O_DIRECT at all (Linux, FreeBSD...; not macOS)."""
    return _O_DIRECT != 0


def write(fd: int, data: bytes | memoryview) -> bool:
    """Write `data` into the empty regular file `fd` from offset 0, bypassing the page
    cache for all but its last partial block.

    False (nothing written) where the file system refuses O_DIRECT or its alignment is
    stricter than ALIGN: the caller writes the ordinary way then. Other errors (a full
    disk) raise.
    """
    view = memoryview(data).cast("B")
    aligned = len(view) - len(view) % ALIGN
    if not available() or aligned == 0:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    try:
        done = 0
        bounce = _bounce()
        while done < aligned:
            n = min(_BOUNCE, aligned - done)
            bounce[:n] = view[done : done + n]
            try:
                wrote = os.pwrite(fd, bounce[:n], done)
            except OSError as exc:
                if exc.errno == errno.EINVAL and done == 0:
                    return False  # refused before anything was written
                raise
            if wrote != n:  # only a full disk cuts a direct write short
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += n
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    tail = view[aligned:]
    while tail:
        n = os.pwrite(fd, tail, done)
        done += n
        tail = tail[n:]
    return True


def _bounce() -> memoryview:
    """This thread's aligned buffer (an anonymous mapping: page-aligned), made once."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(mmap.mmap(-1, _BOUNCE))
    return view
