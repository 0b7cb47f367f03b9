"""Leaving no process behind: every process a deployment starts carries a marker in its
environment, and `sweep` ends whatever still carries it once the services are stopped.

Stopping a service kills its process group, but not all of their processes stay in it:
Airflow puts each task process in a group of its own, Prefect may start a flow-run
process in a new session. They all inherit the environment, though.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

MARK = "CAIRN_DEPLOY_TEST_PROCESS"


def new_mark() -> dict[str, str]:
    """An environment entry to give every process of one deployment."""
    return {MARK: uuid.uuid4().hex}


def marked(mark: dict[str, str]) -> list[int]:
    """PIDs of the live processes whose environment holds `mark`."""
    (name, value), me = next(iter(mark.items())), os.getpid()
    needle = f"\0{name}={value}\0".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if needle in b"\0" + environ.read_bytes() + b"\0" and int(environ.parent.name) != me:
                found.append(int(environ.parent.name))
    return found


def sweep(mark: dict[str, str], *, grace: float = 5.0) -> list[int]:
    """SIGTERM the marked processes, SIGKILL those still there after `grace` seconds;
    returns the PIDs that were found."""
    found = marked(mark)
    _signal(found, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (left := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal(left, signal.SIGKILL)
    return found


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
