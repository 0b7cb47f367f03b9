"""The data the deployment tests write and read back."""

from __future__ import annotations

import random
from pathlib import Path

from cairn.engine.marker import MARKER

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


def checked_out(root: Path) -> dict[str, bytes]:
    """Every file of the version checked out under `root`, by its path relative to it
    (not the checkout's own marker, `.cairn-checkout.json`)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() != MARKER
    }
