"""Which process owns a TCP connection, read from /proc (Linux): the test kills the
process that is sending a request the fault proxy holds, and no other."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def socket_inodes(local_port: int, remote_port: int) -> set[str]:
    """Inodes of the TCP sockets from `local_port` to `remote_port` (any loopback address)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if _port(local) == local_port and _port(remote) == remote_port and inode != "0":
                    found.add(inode)
    return found


def owners(inodes: set[str]) -> set[int]:
    """PIDs of the processes holding one of these sockets open."""
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to look at
            for fd in os.listdir(fd_dir):
                if os.readlink(fd_dir / fd) in wanted:
                    pids.add(int(fd_dir.parent.name))
                    break
    return pids


def client_pids(client_port: int, server_port: int) -> set[int]:
    """The processes on the client end of the connection client_port -> server_port."""
    return owners(socket_inodes(client_port, server_port))


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)
