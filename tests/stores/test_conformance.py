"""The contract every store backend keeps (cairn/storage/base.py), run on all of them."""

from __future__ import annotations

import os

import pytest
from backends import make_store

from cairn.storage import Batch, RetryingStore, Store


def _inner(store: Store) -> Store:
    return store.inner if isinstance(store, RetryingStore) else store


def test_put_then_get_returns_the_bytes(store):
    store.put("objects/ab/cdef", b"hello")
    assert store.get("objects/ab/cdef") == b"hello"
    store.put("objects/ab/view", memoryview(b"from a view"))
    assert store.get("objects/ab/view") == b"from a view"


def test_put_durable_stores_the_bytes_in_new_and_known_folders(store):
    store.put_durable("log/records/a.json", b"first")  # a folder that did not exist
    store.put_durable("log/records/b.json", b"second")
    store.put_durable("log/records/a.json", b"replaced")
    assert store.get("log/records/a.json") == b"replaced"
    assert store.get("log/records/b.json") == b"second"


def test_empty_object(store):
    store.put("objects/00/empty", b"")
    assert store.get("objects/00/empty") == b""
    assert store.stat("objects/00/empty").size == 0


def test_get_range(store):
    data = bytes(range(256)) * 4
    store.put("objects/rr/range", data)
    assert store.get_range("objects/rr/range", 10, 20) == data[10:20]
    assert store.get_range("objects/rr/range", 1000) == data[1000:]
    assert store.get_range("objects/rr/range", 0, None) == data


def test_missing_key(store):
    with pytest.raises(FileNotFoundError):
        store.get("objects/no/such")
    with pytest.raises(FileNotFoundError):
        store.get_range("objects/no/such", 1, 2)
    assert store.stat("objects/no/such") is None
    assert store.exists_many(["objects/no/such"]) == set()


def test_rewriting_a_key_with_the_same_bytes_is_harmless(store):
    store.put("manifests/m.json", b"{}")
    store.put("manifests/m.json", b"{}")
    assert store.get("manifests/m.json") == b"{}"


def test_put_replaces_an_existing_object(store):
    """A repair writes a good copy over a corrupt one: put must not skip an existing key,
    alone or in a batch, even when the old object is read-only on disk."""
    store.put("objects/ab/cdef", b"rotten bytes")
    local = getattr(_inner(store), "local_path", None)
    if local is not None:
        os.chmod(local("objects/ab/cdef"), 0o444)
    store.put("objects/ab/cdef", b"good")
    assert store.get("objects/ab/cdef") == b"good"
    assert store.stat("objects/ab/cdef").size == 4
    store.put_many({"objects/ab/cdef": b"better", "objects/ab/0123": b"new"}).raise_first()
    assert store.get_many(["objects/ab/cdef", "objects/ab/0123"]).ok == {
        "objects/ab/cdef": b"better",
        "objects/ab/0123": b"new",
    }


def test_stat(store):
    store.put("objects/st/at", b"12345")
    info = store.stat("objects/st/at")
    assert info.key == "objects/st/at"
    assert info.size == 5
    assert info.mtime is None or isinstance(info.mtime, float)


def test_exists_many_few_keys(store):
    store.put("objects/aa/1", b"1")
    store.put("config.json", b"{}")
    asked = ["objects/aa/1", "objects/aa/2", "objects/bb/1", "config.json", "nope.json"]
    assert store.exists_many(asked) == {"objects/aa/1", "config.json"}
    assert store.exists_many([]) == set()


def test_exists_many_many_keys_across_folders(store):
    present = {f"objects/{i % 7:02x}/{i:060x}" for i in range(0, 120, 2)}
    store.put_many({k: k.encode() for k in present}).raise_first()
    store.put("config.json", b"{}")
    absent = {f"objects/{i % 7:02x}/{i:060x}" for i in range(1, 120, 2)}
    absent |= {f"objects/ff/{i:062x}" for i in range(20)}  # a folder that does not exist
    asked = sorted(present | absent | {"config.json", "other.json"})
    assert store.exists_many(asked + asked[:5]) == present | {"config.json"}


def test_exists_many_takes_both_paths_alike(store):
    """Few keys are asked one by one, many by listing folders: the answer must not differ."""
    keys = [f"objects/{i % 3:02x}/{i:062x}" for i in range(30)]
    store.put_many({k: b"x" for k in keys[::3]}).raise_first()
    inner = _inner(store)
    if hasattr(inner, "head_limit"):
        inner.head_limit, inner.list_min = 0, 1  # always list
        by_listing = store.exists_many(keys)
        inner.head_limit = 10**6  # never list
        by_head = store.exists_many(keys)
        assert by_listing == by_head == set(keys[::3])
    else:
        assert store.exists_many(keys) == set(keys[::3])


def test_list_is_sorted_and_filtered_by_prefix(store):
    keys = ["objects/b1/x", "objects/a0/y", "objects/a0/x", "manifests/m.json", "config.json"]
    for k in keys:
        store.put(k, k.encode())
    listed = list(store.list("objects/"))
    assert [i.key for i in listed] == ["objects/a0/x", "objects/a0/y", "objects/b1/x"]
    assert [i.size for i in listed] == [
        len(k) for k in ("objects/a0/x", "objects/a0/y", "objects/b1/x")
    ]
    assert sorted(i.key for i in store.list()) == sorted(keys)
    assert [i.key for i in store.list("manifests/")] == ["manifests/m.json"]
    assert list(store.list("nothing/here/")) == []


def test_list_sorts_a_folders_contents_where_its_name_and_a_slash_would(store):
    """Key order, not folder-by-folder order: `a.json` < `a/b` < `a0` (`.` < `/` < `0`)."""
    keys = ["log/a0", "log/a/b", "log/a.json", "log/a/c/d", "log/b"]
    store.put_many({k: b"x" for k in keys}).raise_first()
    assert [i.key for i in store.list("log/")] == sorted(keys)
    assert [i.key for i in store.list("log/a/")] == ["log/a/b", "log/a/c/d"]
    assert [i.key for i in store.list("log/a0")] == ["log/a0"]  # a prefix naming a key


@pytest.mark.parametrize("backend", ["fsspec-memory", "s3", "gcs"])
def test_a_listing_of_an_fsspec_store_reads_a_few_folders_at_a_time(
    request, backend, tmp_path, monkeypatch
):
    """The first objects of a listing come before the later folders are read (here two
    at once): a store of a million objects is never one listing in memory."""
    import cairn.storage.fsspec_store as fsspec_store

    monkeypatch.setattr(fsspec_store, "_LOOKAHEAD", 2)
    store = make_store(request, backend, tmp_path)
    inner = _inner(store)
    keys = [f"objects/{i:02x}/{i:062x}" for i in range(8)]
    store.put_many({k: b"x" for k in keys}).raise_first()
    real, folders = inner._listdir, []

    async def counted(path):  # type: ignore[no-untyped-def]
        folders.append(path)
        return await real(path)

    inner._listdir = counted
    try:
        listing = store.list("objects/")
        assert next(listing).key == keys[0]
        assert len(folders) == 3  # objects/, objects/00/ and objects/01/
        assert [keys[0], *(i.key for i in listing)] == keys
        assert len(folders) == 1 + 8
    finally:
        del inner._listdir
        store.close()


def test_an_object_deleted_while_a_listing_runs_is_no_error(store):
    """gc and store-log compaction list folders that other writers delete from: the
    listing goes on (the deleted object may still show, as a paged listing would)."""
    keys = [f"log/records/{n}.json" for n in range(5)]
    for k in keys:
        store.put(k, b"{}")
    listing = store.list("log/records/")
    first = next(listing)
    store.delete(keys[2:4])
    rest = [i.key for i in listing]
    assert first.key == keys[0] and {keys[1], keys[4]} <= set(rest) <= set(keys[1:])


def test_delete(store):
    store.put("objects/de/1", b"1")
    store.put("objects/de/2", b"2")
    store.delete(["objects/de/1", "objects/de/missing"])
    store.delete([])
    assert store.exists_many(["objects/de/1", "objects/de/2"]) == {"objects/de/2"}
    assert store.stat("objects/de/1") is None


def test_put_many_and_get_many(store):
    items = {f"objects/{i:02x}/{i:062x}": os.urandom(100 + i) for i in range(40)}
    result = store.put_many(items)
    assert isinstance(result, Batch)
    assert not result.failed and set(result.ok) == set(items)
    got = store.get_many([*items, "objects/zz/missing"])
    assert got.ok == items
    assert list(got.failed) == ["objects/zz/missing"]
    assert isinstance(got.failed["objects/zz/missing"], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        got.raise_first()


def test_put_file(store, tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"from a file" * 100)
    store.put_file("objects/pf/1", str(src))
    assert store.get("objects/pf/1") == b"from a file" * 100


def test_large_object(store):
    data = os.urandom(6 << 20)
    store.put("objects/la/rge", data)
    assert store.get("objects/la/rge") == data
    assert (
        store.get_range("objects/la/rge", (5 << 20) + 3, (5 << 20) + 9)
        == data[(5 << 20) + 3 : (5 << 20) + 9]
    )


def test_sync_and_close_are_safe(store):
    store.put("objects/sy/nc", b"x")
    store.sync()
    store.sync()


def test_bytes_ending_in_carriage_return_survive(store):
    """gcp-storage-emulator drops a trailing CR from multipart uploads; GCSStore avoids them."""
    for i, data in enumerate([b"\r", b"abc\r", b"x\r\n\r", bytes(range(256)) + b"\r"]):
        store.put(f"objects/cr/{i}", data)
        assert store.get(f"objects/cr/{i}") == data
    items = {f"objects/cr/m{i}": bytes([i]) * 10 + b"\r" for i in range(20)}
    store.put_many(items).raise_first()
    assert store.get_many(items).ok == items
