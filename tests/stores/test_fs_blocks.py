"""Ranged reads through cairn:// checked in blocks (cairn.engine.blocks, docs/FS.md "Integrity
of ranged reads"): an object read once is checked whole against its digest and its block
index recorded; later reads fetch only the blocks around a range, each checked, and a
change in the store or a bad index is caught, never returned."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cairn import Artifact, IntegrityError, Repository
from cairn.engine import blocks
from cairn.engine.blocks import BLOCK, BlockIndex, index_of
from cairn.foundation.layout import object_key
from cairn.fs import CairnFileSystem

# chunks of ~256 KiB, so a file of a few MiB is many objects larger than a block
CHUNKS = {"threshold": 1 << 20, "avg": 256 << 10, "min": 128 << 10, "max": 512 << 10}


@pytest.fixture(params=["local", "s3"])
def chunked_repo(request, tmp_path):
    """A repository on a local folder or on S3 (moto) whose store chunks files above 1 MiB,
    holding `ds` with one chunked file (`big.bin`) and one single-object file (`one.bin`)."""
    doc = json.dumps({"format": 1, "chunking": CHUNKS}).encode()
    if request.param == "local":
        (tmp_path / "store").mkdir()
        (tmp_path / "store" / "config.json").write_bytes(doc)
        opened = {"store": str(tmp_path / "store")}
    else:
        s3 = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        s3.client().put_object(Bucket=bucket, Key="repo/config.json", Body=doc)
        opened = {"store": f"s3://{bucket}/repo", "storage_options": s3.storage_options}
    src = tmp_path / "src"
    src.mkdir()
    data = {"big.bin": random.Random(1).randbytes(5 << 20), "one.bin": os.urandom(900_000)}
    for name, content in data.items():
        (src / name).write_bytes(content)
    repo = Repository.open(
        catalog=f"sqlite:///{tmp_path}/c.db", home=str(tmp_path / "home"), **opened
    )
    v = repo.log_artifact(Artifact("ds").add_dir(src), project="p")
    yield repo, v, data
    repo.close()


def fresh(repo: Repository) -> CairnFileSystem:
    """A filesystem with an empty object cache (as in a new process), same cache folder."""
    return CairnFileSystem(repository=repo, skip_instance_cache=True)


@pytest.mark.parametrize("name", ["big.bin", "one.bin"])
def test_a_range_read_again_fetches_only_the_blocks_around_it(chunked_repo, name):
    repo, v, data = chunked_repo
    path = f"{v.ref}/{name}"
    first = fresh(repo)
    assert first.cat_file(path, 700_000, 700_100) == data[name][700_000:700_100]
    assert first.objects_cache.fetched >= 128 << 10  # never read: the object(s), whole

    again = fresh(repo)
    assert again.cat_file(path, 700_000, 700_100) == data[name][700_000:700_100]
    assert again.objects_cache.fetched <= 2 * BLOCK  # the block(s) holding the range
    # ranges across blocks, chunks, and the end of the file, all checked
    rng = random.Random(7)
    size = len(data[name])
    for _ in range(60):
        a = rng.randrange(size)
        b = min(size, a + rng.choice([1, 100, BLOCK, BLOCK + 1, 300_000, 1 << 20]))
        assert again.cat_file(path, a, b) == data[name][a:b], (a, b)
    assert again.cat_file(path, size - 10) == data[name][-10:]
    with again.open(path, "rb") as f:
        f.seek(size // 3)
        assert f.read(BLOCK * 3 + 5) == data[name][size // 3 : size // 3 + BLOCK * 3 + 5]
    assert again.objects_cache.fetched < size + 64 * BLOCK


def local_object(repo: Repository, v, digest: str) -> Path:  # type: ignore[no-untyped-def]
    return Path(repo.store.url) / object_key(digest, namespace=v.namespace)


def one_object(v) -> str:  # type: ignore[no-untyped-def]
    entry = v.entry("one.bin")
    assert not entry.chunks
    return str(entry.digest)


def test_a_block_changed_in_the_store_after_it_was_indexed_is_an_error(local_repo, tmp_path):
    repo, v, data = local_repo
    path = f"{v.ref}/one.bin"
    fresh(repo).cat_file(path)  # checked whole, indexed
    obj = local_object(repo, v, one_object(v))
    obj.chmod(0o644)
    body = bytearray(obj.read_bytes())
    body[500_000] ^= 0xFF
    obj.write_bytes(bytes(body))
    fs = fresh(repo)
    # a range in the changed block: its block does not match, and the whole object does
    # not match its digest either
    with pytest.raises(IntegrityError, match="one.bin"):
        fs.cat_file(path, 500_000, 500_010)
    # a range of blocks that did not change is still what was logged (checked by block)
    assert fresh(repo).cat_file(path, 0, 1000) == data["one.bin"][:1000]
    # and a reader without the index checks the whole object: an error too
    (Path(repo.contents.cache_dir) / "blocks").rename(tmp_path / "old-blocks")
    with pytest.raises(IntegrityError, match="corrupt"):
        fresh(repo).cat_file(path, 0, 1000)


def test_a_damaged_or_wrong_index_is_rebuilt_never_trusted(local_repo):
    repo, v, data = local_repo
    path = f"{v.ref}/one.bin"
    digest = one_object(v)
    fresh(repo).cat_file(path, 0, 10)
    blocks.settle()  # the index is written off the reader's thread
    index_file = Path(repo.contents.cache_dir) / "blocks" / digest[:2] / digest[2:]
    good = index_file.read_bytes()
    assert BlockIndex.from_bytes(digest, good) == index_of(digest, data["one.bin"])

    index_file.chmod(0o644)
    index_file.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # damaged: ignored
    fs = fresh(repo)
    assert fs.cat_file(path, 800_000, 800_050) == data["one.bin"][800_000:800_050]
    assert fs.objects_cache.fetched == len(data["one.bin"])  # read whole, re-indexed
    blocks.settle()
    assert index_file.read_bytes() == good

    # well formed, but not this object's blocks: a block "fails", the whole object is
    # checked against its digest, passes, and the index is replaced
    wrong = BlockIndex(digest, len(data["one.bin"]), os.urandom(len(good) - 52))
    index_file.chmod(0o644)
    index_file.write_bytes(wrong.to_bytes())
    fs = fresh(repo)
    assert fs.cat_file(path, 300_000, 300_050) == data["one.bin"][300_000:300_050]
    blocks.settle()
    assert index_file.read_bytes() == good


def test_block_index_bytes_round_trip_and_refuse_what_they_do_not_describe():
    content = os.urandom(3 * BLOCK + 5)
    index = index_of("ab" * 32, content)
    assert index.count() == 4
    assert BlockIndex.from_bytes("ab" * 32, index.to_bytes()) == index
    assert index.matches(1, content[BLOCK:])
    assert not index.matches(0, content[BLOCK:])
    assert not index.matches(3, content[3 * BLOCK :] + b"x")
    raw = index.to_bytes()
    assert BlockIndex.from_bytes("ab" * 32, raw[:-1]) is None
    assert BlockIndex.from_bytes("ab" * 32, b"") is None


@pytest.fixture
def local_repo(tmp_path):
    """A repository on a local folder holding `ds` with one object of 900,000 bytes."""
    src = tmp_path / "src"
    src.mkdir()
    data = {"one.bin": os.urandom(900_000)}
    (src / "one.bin").write_bytes(data["one.bin"])
    repo = Repository.open(
        catalog=f"sqlite:///{tmp_path}/c.db", store=str(tmp_path / "store"), home=str(tmp_path)
    )
    v = repo.log_artifact(Artifact("ds").add_dir(src), project="p")
    yield repo, v, data
    repo.close()


def index_files(repo: Repository) -> list[Path]:
    return sorted(p for p in (Path(repo.contents.cache_dir) / "blocks").rglob("*") if p.is_file())


def test_cache_cleanup_evicts_block_indexes_with_the_files_least_recently_used_first(
    local_repo, tmp_path
):
    repo, v, data = local_repo
    path = f"{v.ref}/one.bin"
    fresh(repo).cat_file(path, 0, 10)  # checked whole, indexed
    blocks.settle()
    [index_file] = index_files(repo)
    index_size = index_file.stat().st_size
    v.download(tmp_path / "out")  # one.bin in the download cache too
    cache = repo.cache
    assert cache.size() == 900_000
    # within the budget: nothing goes, and the index counts in what the cache holds
    report = cache.cleanup(max_bytes=10**9)
    assert (report.files_removed, report.indexes_removed) == (0, 0)
    assert report.bytes_kept == 900_000 + index_size and index_file.exists()

    # the index used longer ago than the file goes first
    os.utime(index_file, (1, 1))
    report = cache.cleanup(max_bytes=900_000)
    assert (report.files_removed, report.indexes_removed) == (0, 1)
    assert report.bytes_freed == index_size and index_files(repo) == []
    # a read rebuilds it (the object is read whole once more), and loading it is a use
    fs = fresh(repo)
    assert fs.cat_file(path, 10, 20) == data["one.bin"][10:20]
    assert fs.objects_cache.fetched == 900_000
    blocks.settle()
    os.utime(index_file, (1, 1))
    assert fresh(repo).cat_file(path, 30, 40) == data["one.bin"][30:40]
    assert index_file.stat().st_mtime > 1
    report = cache.cleanup(max_bytes=index_size)  # the file was used longer ago now
    assert (report.files_removed, report.indexes_removed) == (1, 0) and index_file.exists()

    # a writer's temporary file left over an hour ago goes too; files not cairn's stay
    stray = index_file.parent / ".tmp-dead"
    stray.write_bytes(b"half an index")
    os.utime(stray, (1, 1))
    recent = index_file.parent / ".tmp-writing"
    recent.write_bytes(b"being written")
    foreign = Path(repo.contents.cache_dir) / "blocks" / "notes.txt"
    foreign.write_text("mine")
    # 0 clears the cache: every index goes
    report = cache.cleanup(max_bytes=0)
    assert report.indexes_removed == 2 and report.bytes_kept == 0
    assert not index_file.exists() and not stray.exists()
    assert recent.exists() and foreign.read_text() == "mine"
    assert fresh(repo).cat_file(path, 0, 10) == data["one.bin"][:10]


def test_the_first_read_returns_before_its_index_is_worked_out(local_repo, monkeypatch):
    """A first read fetches the object whole and checks its digest; the index is worked
    out on the process's indexing thread, and a later reader of the object waits for it
    rather than fetching the object again."""
    repo, v, data = local_repo
    path = f"{v.ref}/one.bin"
    release, threads = threading.Event(), []
    real = blocks.index_of

    def slow_index_of(digest, content):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        assert release.wait(30)
        return real(digest, content)

    monkeypatch.setattr(blocks, "index_of", slow_index_of)
    assert fresh(repo).cat_file(path, 0, 10) == data["one.bin"][:10]
    assert index_files(repo) == []  # the read did not wait for its index
    later, got = fresh(repo), []
    reader = threading.Thread(target=lambda: got.append(later.cat_file(path, 500_000, 500_010)))
    reader.start()
    time.sleep(0.2)
    assert reader.is_alive()  # waiting for the index
    release.set()
    reader.join(30)
    assert got == [data["one.bin"][500_000:500_010]]
    assert later.objects_cache.fetched <= 2 * BLOCK  # blocks, not the object again
    assert [t.startswith("cairn-blocks") for t in threads] == [True]
    assert len(index_files(repo)) == 1


def test_with_too_many_bytes_waiting_the_reader_works_out_the_index_itself(local_repo, monkeypatch):
    repo, v, data = local_repo
    monkeypatch.setattr(blocks, "PENDING_MAX", 0)
    fresh(repo).cat_file(f"{v.ref}/one.bin", 0, 10)
    [index_file] = index_files(repo)  # written before the read returned
    assert BlockIndex.from_bytes(one_object(v), index_file.read_bytes()) == index_of(
        one_object(v), data["one.bin"]
    )


def test_a_read_while_the_interpreter_exits_works_out_the_index_itself(local_repo, monkeypatch):
    """Once the interpreter is exiting, a thread pool takes no more work (as here, shut
    down): the reader hashes the blocks itself instead of failing."""
    repo, v, data = local_repo
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    monkeypatch.setattr(blocks._INDEXER, "_pool", pool)
    assert fresh(repo).cat_file(f"{v.ref}/one.bin", 0, 10) == data["one.bin"][:10]
    [index_file] = index_files(repo)
    assert BlockIndex.from_bytes(one_object(v), index_file.read_bytes()) is not None


def test_a_process_that_ends_after_its_first_read_leaves_the_index(local_repo, tmp_path):
    repo, v, data = local_repo
    script = (
        "import sys\n"
        "from cairn import Repository\n"
        "from cairn.fs import CairnFileSystem\n"
        "repo = Repository.open(catalog=sys.argv[1], store=sys.argv[2], home=sys.argv[3])\n"
        "fs = CairnFileSystem(repository=repo, skip_instance_cache=True)\n"
        "sys.stdout.buffer.write(fs.cat_file(sys.argv[4], 0, 10))\n"
    )
    args = [f"sqlite:///{tmp_path}/c.db", str(tmp_path / "store"), str(tmp_path)]
    out = subprocess.run(
        [sys.executable, "-c", script, *args, f"{v.ref}/one.bin"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert out.stdout == data["one.bin"][:10]
    [index_file] = index_files(repo)
    assert BlockIndex.from_bytes(one_object(v), index_file.read_bytes()) is not None


def test_a_forked_child_works_out_indexes_of_its_own(local_repo, tmp_path):
    """A child forked after the parent's indexing thread started has no such thread: it
    starts its own (a reader waiting on the parent's would wait forever)."""
    repo, v, data = local_repo
    fresh(repo).cat_file(f"{v.ref}/one.bin", 0, 10)
    blocks.settle()
    other = tmp_path / "other"
    other.mkdir()
    (other / "two.bin").write_bytes(os.urandom(300_000))
    v2 = repo.log_artifact(Artifact("two").add_dir(other), project="p")

    def child() -> None:
        fs = fresh(repo)
        fs.cat_file(f"{v2.ref}/two.bin", 0, 10)
        again = fresh(repo)
        again.cat_file(f"{v2.ref}/two.bin", 200_000, 200_010)
        os._exit(0 if again.objects_cache.fetched <= 2 * BLOCK else 3)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    if process.is_alive():
        process.kill()
    assert process.exitcode == 0
    assert len(index_files(repo)) == 2
