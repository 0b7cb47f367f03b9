"""A log of a folder streams (flat memory in the number of files), and a draft costs its
changes (the shards and catalog statements it touches do not grow with the version).

Batches, shards and caches are made small here so that a few thousand files show what
a million would: memory that grew per file would show as a peak ten times larger.
"""

from __future__ import annotations

import os
import tracemalloc

import pytest
from sqlalchemy import event

import cairn.engine.objects as objects_module
import cairn.engine.scan as scan_module
import cairn.engine.transfer as transfer_module
import cairn.engine.walk as walk_module
import cairn.foundation.manifest as manifest_module
import cairn.foundation.manifest_shards as shards_module
from cairn import Artifact, Conflict, Repository

from .conftest import write


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 64 files, format 3 above 64 entries, shards of ~64 entries, a spool
    and a shard cache of a few kilobytes: what bounds memory is visible at 3,000 files."""
    monkeypatch.setattr(scan_module, "BATCH_FILES", 64)
    monkeypatch.setattr(transfer_module, "_SMALL_BATCH_FILES", 64)
    monkeypatch.setattr(manifest_module, "SHARD_THRESHOLD", 64)
    monkeypatch.setattr(manifest_module, "CACHED_ENTRIES", 128)
    monkeypatch.setattr(shards_module, "SHARD_BITS", 6)
    monkeypatch.setattr(shards_module, "SHARD_MAX", 256)
    monkeypatch.setattr(shards_module, "SPOOL_MEMORY", 4096)
    monkeypatch.setattr(objects_module, "_WHERE_BATCH", 64)
    monkeypatch.setattr(transfer_module, "WAIT_BYTES", 4096)  # small objects waiting
    monkeypatch.setattr(objects_module, "PACK_BYTES", 4096)
    monkeypatch.setattr(walk_module, "REMEMBERED", 64)  # a small folder's kept listing


def _folder(root, n: int) -> str:
    for i in range(n):
        write(root / f"d{i // 100:03d}" / f"f{i:05d}.bin", os.urandom(64))
    return str(root)


def _put_peak(tmp_path, name: str, n: int) -> int:
    """The traced peak of a first log of `n` files, above what was traced before it."""
    data = _folder(tmp_path / f"data-{name}", n)
    repo = Repository.open(home=str(tmp_path / f"home-{name}"))
    try:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            v = repo.log_artifact(Artifact("ds").add_dir(data))
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert v.file_count == n and len(v.manifest) == n
        return peak
    finally:
        repo.close()


def test_put_memory_is_flat_in_the_number_of_files(tmp_path, small_batches):
    small = _put_peak(tmp_path, "small", 300)
    large = _put_peak(tmp_path, "large", 3000)
    # ten times the files: a list or dict of every file (a few hundred bytes each) would
    # add about a megabyte; batches, shards and caches are bounded, the shard list aside
    assert large < small * 1.5 + (256 << 10), (small, large)


def test_an_unchanged_re_log_streams_too(tmp_path, small_batches):
    data = _folder(tmp_path / "data", 1000)
    repo = Repository.open(home=str(tmp_path / "home"))
    first = repo.log_artifact(Artifact("ds").add_dir(data))
    again = repo.log_artifact(Artifact("ds").add_dir(data))
    assert again.id == first.id and again.created is False
    assert again.last_log.files == 1000 and again.last_log.files_hashed == 0
    write(tmp_path / "data" / "d009" / "f00999.bin", b"changed")
    third = repo.log_artifact(Artifact("ds").add_dir(data))
    assert third.version == "v1" and third.last_log.files_hashed == 1
    assert repo.diff("ds:v0", "ds:v1").modified == ("d009/f00999.bin",)
    repo.close()


def test_a_folder_is_logged_in_path_order_whatever_its_names(tmp_path, small_batches):
    """Folders sort as `name/`: after `a-b` and `a.txt`, before `a0` (byte order)."""
    root = tmp_path / "data"
    names = ["a-b", "a.txt", "a/x", "a/y/z", "a0", "b", "a-/q", "e-1"]
    for i in range(80):  # enough for format 3
        names.append(f"m/{i:03d}")
    for n in names:
        write(root / n, n.encode())
    os.makedirs(root / "e")  # an empty folder, whose entry sorts before `e-1`
    repo = Repository.open(home=str(tmp_path / "home"))
    v = repo.log_artifact(Artifact("ds").add_dir(str(root)))
    paths = list(v.manifest)
    assert paths == sorted([*names, "e"])
    out = tmp_path / "out"
    v.download(str(out))
    assert (out / "a-b").read_bytes() == b"a-b" and (out / "a" / "y" / "z").read_bytes() == b"a/y/z"
    assert (out / "e").is_dir()
    repo.close()


def test_folders_added_whole_conflict_and_remove_as_files_did(tmp_path):
    root = tmp_path / "data"
    write(root / "x.bin", b"x")
    write(root / "sub" / "y.bin", b"y")
    other = write(tmp_path / "other.bin", b"o")
    art = Artifact("ds").add_dir(str(root))
    with pytest.raises(Conflict):
        art.add_file(other, name="x.bin")
    art.add_file(str(root / "x.bin"), name="x.bin")  # the same file: no conflict
    art.remove("sub")
    assert art.local_files == {"x.bin": str(root / "x.bin")}
    art.add_file(other, name="sub/y.bin")  # removed: free again
    assert art.local_files["sub/y.bin"] == other

    twice = Artifact("ds").add_dir(str(root)).add_dir(str(root / "sub"), name="sub")
    assert twice.local_files["sub/y.bin"] == str(root / "sub" / "y.bin")
    clash = Artifact("ds").add_dir(str(root)).add_dir(str(tmp_path / "data"), name="sub")
    write(root / "y.bin", b"z")  # now sub/y.bin comes from data/sub/y.bin and data/y.bin
    with pytest.raises(Conflict, match="'sub/y.bin' was added from both"):
        dict(clash.files())


def _counting(repo: Repository, monkeypatch) -> dict[str, int]:
    """Counters of manifest documents decoded (root and shards) and of SQL statements."""
    counts = {"documents": 0, "statements": 0}
    decode = manifest_module.decode

    def counted(*args, **kwargs):
        counts["documents"] += 1
        return decode(*args, **kwargs)

    monkeypatch.setattr(manifest_module, "decode", counted)

    def statement(*_args):
        counts["statements"] += 1

    event.listen(repo.catalog.engine, "before_cursor_execute", statement)
    return counts


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_a_draft_reads_the_shards_it_changes_only(tmp_path, monkeypatch, request, catalog):
    """A draft of 3 changes of a version 10x larger reads as many shards and runs as many
    catalog statements: its cost is its changes, not the version."""
    monkeypatch.setattr(manifest_module, "SHARD_THRESHOLD", 64)
    monkeypatch.setattr(shards_module, "SHARD_BITS", 4)
    monkeypatch.setattr(shards_module, "SHARD_MAX", 64)
    url = request.getfixturevalue("fresh_postgres_url") if catalog == "postgres" else None
    cost = {}
    for n in (500, 5000):
        data = _folder(tmp_path / f"data{n}", n)
        home = tmp_path / "home"  # one repository, a collection per size
        repo = Repository.open(catalog=url, home=str(home))
        name = f"ds{n}"
        parent = repo.log_artifact(Artifact(name).add_dir(data))
        assert len(parent.manifest.shards) > (n // 40)  # format 3, many shards
        changes = [write(tmp_path / f"new{n}-{i}.bin", os.urandom(64)) for i in range(3)]
        repo = Repository.open(catalog=url, home=str(home))
        counts = _counting(repo, monkeypatch)
        draft = repo.artifact(f"{name}:v0").new_draft()
        for i, local in enumerate(changes):
            draft.add_file(local, name=f"d{i:03d}/f{i * 100 + 7:05d}.bin")
        child = repo.log_artifact(draft)
        cost[n] = dict(counts)
        monkeypatch.setattr(manifest_module, "decode", shards_module.decode)
        assert child.version == "v1"
        diff = repo.diff(f"{name}:v0", f"{name}:v1")
        assert diff.modified == tuple(f"d{i:03d}/f{i * 100 + 7:05d}.bin" for i in range(3))
        assert not diff.added and not diff.removed
        repo.close()
    small, large = cost[500], cost[5000]
    # the roots, and for each change its shard and maybe a neighbour: the same on both
    assert large["documents"] == small["documents"] <= 2 + 3 * 2, cost
    assert large["statements"] == small["statements"], cost
