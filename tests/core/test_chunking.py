"""The windowed chunker cuts exactly where FastCDC over the whole file does."""

import os
import random
import time

import pyfastcdc
import pytest

from cairn import CairnError
from cairn.engine.transfer import Uploader
from cairn.foundation.chunking import ChunkingParams, FileChunker, digest
from cairn.foundation.layout import object_key
from cairn.storage.memory import MemoryStore

PARAMS = ChunkingParams(threshold=65536, avg=16384, min=4096, max=65536)


def _whole_file_cuts(data: bytes) -> list[tuple[int, int]]:
    cdc = pyfastcdc.FastCDC(PARAMS.avg, min_size=PARAMS.min, max_size=PARAMS.max)
    return [(c.offset, c.length) for c in cdc.cut_buf(data)]


def _windowed_cuts(path, size, buffers=2) -> tuple[list[tuple[int, int]], int]:
    chunker = FileChunker(PARAMS, buffers=buffers)
    cuts, windows = [], 0
    fd = os.open(path, os.O_RDONLY)
    try:
        for w in chunker.windows(fd, size, str(path)):
            windows += 1
            cuts += [(w.offset + s, n) for s, n in w.cuts]
            w.release()
    finally:
        os.close(fd)
    return cuts, windows


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size", [65537, 524288, 524288 * 3 + 12345, 4 << 20])
def test_windows_cut_like_fastcdc_over_the_whole_file(tmp_path, monkeypatch, size, seed):
    monkeypatch.setattr("cairn.foundation.chunking.WINDOW", 0)  # windows of 2 * max = 128 KiB
    # low-entropy stretches too, where chunks run to the maximum size and windows end mid-run
    rng = random.Random(size * 10 + seed)
    data = bytearray(rng.randbytes(size))
    data[size // 3 : size // 3 + 200_000] = bytes(len(data[size // 3 : size // 3 + 200_000]))
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    cuts, windows = _windowed_cuts(path, size)

    assert cuts == _whole_file_cuts(bytes(data))
    assert windows == 1 or size > 2 * PARAMS.max
    if size > 4 * 2 * PARAMS.max:
        assert windows >= 4


def test_a_file_shorter_than_its_stat_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("cairn.foundation.chunking.WINDOW", 0)
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(300_000))
    with pytest.raises(CairnError, match="shrank while logging"):
        _windowed_cuts(path, 1_000_000)


class _SlowStore(MemoryStore):
    """Puts that take a while, so the chunker runs out of buffers and must wait for them."""

    def put(self, key, data):
        time.sleep(0.002)
        super().put(key, data)


def test_a_buffer_is_reused_only_after_its_chunks_are_stored(tmp_path, monkeypatch):
    monkeypatch.setattr("cairn.foundation.chunking.WINDOW", 0)
    data = os.urandom(6 << 20)  # ~12 windows through 4 buffers
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    store = _SlowStore()
    uploader = Uploader(
        store,
        namespace="",
        params=PARAMS,
        protect=lambda ds: {d for d in ds if store.exists_many([object_key(d, namespace="")])},
    )
    try:
        (entry,) = uploader.ingest([("f.bin", str(path))])
    finally:
        uploader.close()

    assert entry.digest == digest(data) and sum(c.size for c in entry.chunks) == len(data)
    assert b"".join(store.get(object_key(c.digest, namespace="")) for c in entry.chunks) == data
    for c in entry.chunks:  # every stored object holds the bytes its key names
        assert digest(store.get(object_key(c.digest, namespace=""))) == c.digest


class _BrokenStore(MemoryStore):
    """Every put of a chunk fails, as a full disk or a lost bucket would make it."""

    def put(self, key, data):
        raise OSError("no space left on device")


@pytest.mark.parametrize("fail_in", ["store", "protect"])
def test_a_failure_mid_file_surfaces_and_frees_every_buffer(tmp_path, monkeypatch, fail_in):
    monkeypatch.setattr("cairn.foundation.chunking.WINDOW", 0)
    data = os.urandom(3 << 20)  # ~24 windows through 4 buffers
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    store = _BrokenStore() if fail_in == "store" else MemoryStore()
    calls = []

    def protect(digests):
        calls.append(len(digests))
        if fail_in == "protect" and len(calls) == 3:  # the third window's lease fails
            raise RuntimeError("catalog went away")
        return set()

    uploader = Uploader(store, namespace="", params=PARAMS, protect=protect)
    try:
        with pytest.raises((OSError, RuntimeError), match="no space left|catalog went away"):
            uploader.ingest([("f.bin", str(path))])
        # every buffer came back: a second file goes through the same chunker
        if fail_in == "protect":
            (entry,) = uploader.ingest([("f.bin", str(path))])
            assert (
                b"".join(store.get(object_key(c.digest, namespace="")) for c in entry.chunks)
                == data
            )
    finally:
        uploader.close()
    assert uploader._chunker._free is not None
    assert uploader._chunker._free.qsize() == 4
