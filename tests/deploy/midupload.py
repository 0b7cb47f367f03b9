"""Catching a writer in the middle of an upload, to kill it there.

The workers' store traffic goes through a FaultProxy. Armed with the contents of one part,
`MidUpload` lets every PUT of the first of its objects through and parks the PUTs of the
others: the writer has stored some of its bytes and is sending more, and stays so (its
client's retries are parked too) until the test has killed it. The process to kill is the
one holding the client end of a parked connection (read from /proc).
"""

from __future__ import annotations

import os
import signal
import threading
from urllib.parse import urlsplit

import blake3
from sockets import client_pids
from stores.fault_proxy import FaultProxy, Record


class MidUpload:
    """A FaultProxy `hold` for the objects of one part; use as a context manager."""

    def __init__(self, proxy: FaultProxy, contents: list[bytes]):
        self.proxy = proxy
        # the store names objects by their BLAKE3 digest (objects/ab/cdef...)
        self.keys = [blake3.blake3(data).hexdigest()[2:] for data in contents]
        self.first: str | None = None  # the object let through
        self.armed = True
        self._lock = threading.Lock()  # the proxy asks from one thread per request

    def __call__(self, method: str, path: str) -> bool:
        """Should the proxy park this request?"""
        key = next((k for k in self.keys if k in path), None)
        if method != "PUT" or key is None or not self.armed:
            return False
        with self._lock:
            if self.first is None:
                self.first = key
            return key != self.first

    def __enter__(self) -> MidUpload:
        self.proxy.hold = self
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False
        self.proxy.hold = None
        self.proxy.release()  # drop what is parked: its sender is gone

    def first_puts(self) -> list[Record]:
        return self.proxy.requests("PUT", self.first) if self.first else []

    def parked(self) -> list[Record]:
        return [
            r
            for r in self.proxy.requests("PUT")
            if r.status is None and any(k in r.path for k in self.keys if k != self.first)
        ]

    def caught(self) -> bool:
        """One object stored, another being sent."""
        return any(r.status == 200 for r in self.first_puts()) and bool(self.parked())

    def senders(self) -> set[int]:
        """The processes on the client end of the parked requests."""
        server = urlsplit(self.proxy.url).port or 0
        return {pid for r in self.parked() if r.client for pid in client_pids(r.client[1], server)}

    def kill(self, pid: int) -> None:
        """SIGKILL the writer, then let its retry through."""
        os.kill(pid, signal.SIGKILL)
        self.armed = False
