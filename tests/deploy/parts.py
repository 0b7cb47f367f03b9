"""The data the deployment tests write, and how they catch a writer mid-upload."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import blake3

#: bytes of each file of a part: above cairn's packing size, so every file is an object
#: of its own, sent with its own PUT
FILE_BYTES = 384 << 10
PART_FILES = ("a.bin", "b.bin")


def write_parts(folder: Path, count: int, seed: str) -> dict[str, bytes]:
    """`count` part folders part-00, part-01, ... each holding PART_FILES of random bytes
    (seeded: a rerun writes the same). Returns artifact path -> content, as the DAG and
    the flow lay the parts out (`part-NN/a.bin`)."""
    rng = random.Random(seed)
    expected: dict[str, bytes] = {}
    for i in range(count):
        part = folder / f"part-{i:02d}"
        part.mkdir(parents=True)
        for name in PART_FILES:
            data = rng.randbytes(FILE_BYTES)
            (part / name).write_bytes(data)
            expected[f"part-{i:02d}/{name}"] = data
    return expected


def object_keys(contents: list[bytes]) -> list[str]:
    """How the objects of these contents are named in the store (their BLAKE3 digests)."""
    return [blake3.blake3(data).hexdigest()[2:] for data in contents]


class HoldSecondPut:
    """A FaultProxy `hold`: lets the first PUT of one of `fragments` through and parks the
    second (once), so a test can kill the writer with one object stored and one in flight."""

    def __init__(self, fragments: list[str]):
        self.fragments = fragments
        self.passed: str | None = None
        self.held: str | None = None
        self._lock = threading.Lock()  # the proxy calls this from a thread per request

    def __call__(self, method: str, path: str) -> bool:
        if method != "PUT" or not any(f in path for f in self.fragments):
            return False
        with self._lock:
            if self.passed is None:
                self.passed = path
                return False
            if self.held is None:
                self.held = path
                return True
            return False


def checked_out(root: Path) -> dict[str, bytes]:
    """Every file under `root`, by its path relative to it."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
