"""Helper processes that write a get's small files (cairn.engine.smallfiles), so that a
version of a hundred thousand files is written with every core, not one interpreter's.

Each helper is `python -I -S smallfiles.py`: the standard library only, started in tens
of milliseconds. It is sent a folder's descriptor (opened by the get, without following
any link) with the names, cache paths and sizes of a part of that folder's files, over a
socket pair; it answers with their stamps. A helper dies with the process that started
it, and a helper that dies is an error of the get, which a re-run completes.
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import queue
import socket
import subprocess
import sys

from ..foundation.errors import CairnError
from . import smallfiles
from .smallfiles import InTheWay, NoUnnamedFiles, Stamp

#: helpers a get starts: one per core (the get's own threads feed them)
COUNT = min(8, os.cpu_count() or 1)


def available() -> bool:
    """Whether helpers can run here: unnamed files and /proc (Linux), a Python to start."""
    return smallfiles.CAN and bool(sys.executable) and hasattr(socket, "send_fds")


class Helpers:
    """`count` helper processes; `place` hands a part to a free one (from any thread)."""

    def __init__(self, count: int = COUNT):
        self._all: list[tuple[subprocess.Popen[bytes], socket.socket]] = []
        # None: a helper that failed (every taker stops)
        self._free: queue.SimpleQueue[tuple[subprocess.Popen[bytes], socket.socket] | None]
        self._free = queue.SimpleQueue()
        try:
            for _ in range(count):
                self._all.append(self._start())
        except BaseException:
            self.close()
            raise
        for helper in self._all:
            self._free.put(helper)

    def __len__(self) -> int:
        return len(self._all)

    @staticmethod
    def _start() -> tuple[subprocess.Popen[bytes], socket.socket]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            for s in (ours, theirs):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, smallfiles.MESSAGE)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    smallfiles.__file__,
                    str(theirs.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # a session of its own: Ctrl-C at a terminal reaches the get (which
                # closes the sockets, and the helper ends), not the helper mid-start-up
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return proc, ours

    def place(self, dfd: int, rel: str, files: list[tuple[str, str, int]]) -> list[Stamp]:
        """`smallfiles.place` of `files` into folder `dfd` (`rel` names it in errors), by
        a helper; raises as `place` would, or CairnError if the helper died."""
        helper = self._free.get()
        if helper is None:  # another part's helper died: the get stops
            self._free.put(None)
            raise CairnError("a helper process writing the files failed; run the get again")
        proc, sock = helper
        try:
            socket.send_fds(sock, [marshal.dumps(files)], [dfd])
            answer = sock.recv(smallfiles.MESSAGE)
            if not answer:
                raise self._died(proc)
        except BaseException as exc:
            # its answer may still come: this helper is not used again
            proc.kill()
            self._free.put(None)
            if isinstance(exc, OSError):
                raise self._died(proc) from exc
            raise
        self._free.put(helper)
        kind, *rest = marshal.loads(answer)
        if kind == "ok":
            return rest[0]
        if kind == "unnamed":
            raise NoUnnamedFiles(rest[0])
        if kind == "in the way":
            raise InTheWay(rest[0])
        code, message, filename = rest
        raise OSError(code or errno.EIO, message, filename)

    def _died(self, proc: subprocess.Popen[bytes]) -> CairnError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
        return CairnError(
            f"a helper process writing the files ended unexpectedly (exit code "
            f"{proc.returncode}); run the get again to complete it"
        )

    def close(self) -> None:
        """End every helper: its socket closed, it exits once its part is done."""
        for _, sock in self._all:
            sock.close()
        for proc, _ in self._all:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._all = []

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
