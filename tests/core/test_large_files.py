"""The first log of a large file: one read, a pipeline of stages, bounded memory.

Reading and cutting, hashing, and writing run on threads of their own (transfer.py);
the local store writes chunk objects around the page cache (stores/direct.py). The
chunks and digests must stay those every earlier version of cairn made, or stores
written before would no longer deduplicate.
"""

from __future__ import annotations

import errno
import os
import random
import threading

import blake3
import pyfastcdc
import pytest

from cairn import Artifact, Repository
from cairn.engine.transfer import Uploader
from cairn.foundation.chunking import ChunkingParams, digest
from cairn.foundation.layout import object_key
from cairn.storage import LocalStore, direct
from cairn.storage import local as local_store

MiB = 1 << 20
# what cairn has always made of `_data()` with the default chunking: the file digest,
# the number of chunks, and the BLAKE3 of their "digest:size" lines
EXPECTED = (
    "b6a5696b9768d869dad22e467ba2e65ebd680abbf7e5c44d778aeff1600dda45",
    30,
    "152e325d025406b91c03693f448157028deecf8195c0af1c11fe273985fd476c",
)
FIRST_CHUNKS = [
    ("97a6d85fb8b16ff290521d0132b09a8168e17a65122ea8a3b3e952ddb6ffa56e", 1538807),
    ("bc96ae7fdb142abb38b351ccea269eaff2b56abb8e0322b99ede0045dc2bf690", 813279),
]


@pytest.fixture(autouse=True)
def direct_at_once(monkeypatch):
    """Large objects go around the page cache from the first byte (in use: after 512 MiB
    since the last sync), so these tests of direct writes need no gigabytes."""
    monkeypatch.setattr(local_store, "DIRECT_AFTER", 0)


def _data() -> bytes:
    """40 MiB of seeded random bytes with a 6 MiB run of zeros (chunks cut at max size)."""
    data = bytearray(random.Random(14).randbytes(40 * MiB))
    data[9 * MiB : 15 * MiB] = bytes(6 * MiB)
    return bytes(data)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "big.bin"
    data = _data()
    path.write_bytes(data)
    return path, data


def _summary(entry) -> tuple[str, int, str]:
    lines = "".join(f"{c.digest}:{c.size}\n" for c in entry.chunks)
    return entry.digest, len(entry.chunks), blake3.blake3(lines.encode()).hexdigest()


def _reference(data: bytes, params: ChunkingParams) -> list[tuple[str, int]]:
    """FastCDC over the whole file in memory and a digest per chunk: no windows."""
    cdc = pyfastcdc.FastCDC(params.avg, min_size=params.min, max_size=params.max)
    return [(digest(c.data), c.length) for c in cdc.cut_buf(data)]


def _uploader(store, params=ChunkingParams()) -> Uploader:
    return Uploader(
        store,
        namespace="",
        params=params,
        protect=lambda ds: {d for d in ds if store.exists_many([object_key(d, namespace="")])},
    )


@pytest.mark.parametrize("window", ["default", "small"])
def test_chunks_and_digests_are_the_ones_cairn_always_made(big, tmp_path, monkeypatch, window):
    if window == "small":
        monkeypatch.setattr("cairn.foundation.chunking.WINDOW", 0)  # 8 MiB windows: 5 of them
    path, data = big
    store = LocalStore(str(tmp_path / "store"))
    uploader = _uploader(store)
    try:
        (entry,) = uploader.ingest([("big.bin", str(path))])
    finally:
        uploader.close()

    assert _summary(entry) == EXPECTED
    assert [(c.digest, c.size) for c in entry.chunks[:2]] == FIRST_CHUNKS
    assert [(c.digest, c.size) for c in entry.chunks] == _reference(data, ChunkingParams())
    assert entry.digest == blake3.blake3(data).hexdigest()
    # each object on disk (written around the page cache) holds exactly its chunk
    assert store.direct
    at = 0
    for c in entry.chunks:
        with open(store.local_path(object_key(c.digest, namespace="")), "rb") as f:
            assert f.read() == data[at : at + c.size]
        at += c.size


class _SlowStore(LocalStore):
    """A local store whose writes take a while, as a busy disk's do; counts them."""

    def __init__(self, root: str, delay: float):
        super().__init__(root)
        self.delay = delay
        self.puts = 0
        self._count = threading.Lock()

    def put(self, key, data):
        threading.Event().wait(self.delay)
        with self._count:
            self.puts += 1
        super().put(key, data)


def test_memory_is_the_chunkers_buffers_whatever_the_file_size(tmp_path, monkeypatch):
    monkeypatch.setattr("cairn.foundation.chunking.WINDOW", 0)  # windows of 2 * max = 128 KiB
    params = ChunkingParams(threshold=65536, avg=16384, min=4096, max=65536)
    data = random.Random(5).randbytes(8 * MiB)  # ~64 windows through 4 buffers
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    store = _SlowStore(str(tmp_path / "store"), delay=0.001)
    uploader = _uploader(store, params)
    try:
        (entry,) = uploader.ingest([("f.bin", str(path))])
    finally:
        uploader.close()

    chunker = uploader._chunker
    assert 2 <= chunker.peak <= 4  # the reader ran ahead of the writers, within bounds
    assert chunker.in_use == 0  # every buffer came back
    assert [(c.digest, c.size) for c in entry.chunks] == _reference(data, params)
    assert store.puts == len({c.digest for c in entry.chunks})


class _FailingStore(LocalStore):
    """The disk fills up after `good` chunk objects."""

    def __init__(self, root: str, good: int):
        super().__init__(root)
        self.good = good
        self.puts = 0
        self._count = threading.Lock()

    def put(self, key, data):
        with self._count:
            self.puts += 1
            full = "objects/" in key and self.puts > self.good
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().put(key, data)


def test_a_failing_writer_stops_the_log_and_commits_nothing(
    big, home, catalog_url, tmp_path, monkeypatch
):
    monkeypatch.setattr("cairn.foundation.chunking.WINDOW", 0)  # 8 MiB windows: 5 of them
    path, data = big
    store = _FailingStore(str(tmp_path / "store"), good=3)
    probe = Repository.open(catalog=catalog_url, home=str(home))
    repo = Repository(probe.catalog, store, home=str(home))
    try:
        with pytest.raises(OSError, match="No space left on device"):
            repo.log_artifact(Artifact("ds").add_file(path), project="p")
        assert repo.versions("p/ds") == []
        assert store.puts < 30  # reading stopped: not every chunk was tried

        # the same log once the disk has room: complete, and the same content as ever
        store.good = 10**6
        v = repo.log_artifact(Artifact("ds").add_file(path), project="p")
        assert v.version == "v0"
        assert _summary(v.entry("big.bin")) == EXPECTED
        assert repo.verify().ok
    finally:
        repo.close()
        probe.store.close()
        probe.statcache.close()


def test_a_large_file_round_trips_through_each_store(big, home, store, tmp_path, monkeypatch):
    monkeypatch.setattr("cairn.foundation.chunking.WINDOW", 0)  # 8 MiB windows: 5 of them
    path, data = big
    url, options = store
    with Repository.open(
        catalog=f"sqlite:///{home}/catalog.db", store=url, storage_options=options, home=str(home)
    ) as repo:
        v = repo.log_artifact(Artifact("ds").add_file(path), project="p")
        assert v.last_log.objects_sent == len({d for d, _ in _reference(data, ChunkingParams())})
        out = v.download(tmp_path / "out")
        assert (out / "big.bin").read_bytes() == data
        assert repo.verify().ok


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 256 << 10, (256 << 10) + 1, 5 * MiB + 123])
@pytest.mark.parametrize("skew", [0, 1, 511])
def test_local_store_writes_every_size_and_alignment_exactly(tmp_path, size, skew):
    store = LocalStore(str(tmp_path / "store"))
    source = random.Random(size + skew).randbytes(size + skew)
    data = memoryview(source)[skew:]  # a chunk starts anywhere in its window
    store.put("objects/x", data)
    assert store.get("objects/x") == bytes(data)
    assert store.direct
    store.sync()


def test_a_file_system_refusing_direct_writes_gets_buffered_ones(tmp_path, monkeypatch):
    # no file system here refuses O_DIRECT (tmpfs took it in Linux 6.6), so the refusal
    # is injected where the flag is set
    real = direct.fcntl.fcntl

    def refuse(fd, cmd, arg=0):
        if cmd == direct.fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)

    monkeypatch.setattr(direct.fcntl, "fcntl", refuse)
    store = LocalStore(str(tmp_path / "store"))
    data = os.urandom(MiB + 7)
    store.put("objects/a", data)
    store.put("objects/b", data[1:])
    assert not store.direct  # asked once, then never again
    assert store.get("objects/a") == data and store.get("objects/b") == data[1:]


def test_a_block_size_stricter_than_the_alignment_falls_back_to_buffered(tmp_path, monkeypatch):
    # aligned to 256 bytes only: the device (512-byte blocks at least) refuses the first
    # direct write with EINVAL, before anything is written
    monkeypatch.setattr(direct, "ALIGN", 256)
    store = LocalStore(str(tmp_path / "store"))
    data = os.urandom(300_000)  # 299,776 aligned bytes: 256-aligned, not 512-aligned
    store.put("objects/a", data)
    assert not store.direct
    assert store.get("objects/a") == data


def test_a_store_writes_through_the_page_cache_until_enough_waits_for_the_sync(
    tmp_path, monkeypatch
):
    """Up to DIRECT_AFTER bytes between syncs go through the page cache (the sync writes
    them back at full speed); after that, around it; a sync starts the count again."""
    monkeypatch.setattr(local_store, "DIRECT_AFTER", 3 * MiB)
    written: list[str] = []
    real = direct.write

    def spy(fd, data):
        written.append("direct")
        return real(fd, data)

    monkeypatch.setattr(direct, "write", spy)
    store = LocalStore(str(tmp_path / "store"))
    blobs = [os.urandom(MiB + i) for i in range(6)]
    for i, data in enumerate(blobs[:4]):
        store.put(f"objects/{i}", data)
    assert written == ["direct"]  # three through the cache, then around it
    store.sync()
    store.put("objects/4", blobs[4])
    assert written == ["direct"]  # counted again from the sync
    for i, data in enumerate(blobs[:5]):
        assert store.get(f"objects/{i}") == data
