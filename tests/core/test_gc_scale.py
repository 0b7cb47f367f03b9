"""gc at scale: the objects that must stay are kept in a scratch database in the cache,
not in memory, and the store's listing and the pack index are judged against it a batch
at a time (docs/FORMAT.md "gc")."""

from __future__ import annotations

import os
import tracemalloc

import pytest

import cairn.engine.gc as collecting
import cairn.engine.scratch as scratch
from cairn import Artifact
from cairn.engine.scratch import DigestSet
from cairn.foundation.errors import IntegrityError
from cairn.foundation.manifest import Entry

from .conftest import random_files, stored_objects, write


def _scratch_files(repo, kind: str = "gc") -> list[str]:
    return sorted(n for n in os.listdir(repo.cache.root) if n.startswith(f".tmp-{kind}-"))


def _few(repo, tmp_path, i: int):
    """A version of three small files: too few for a pack, so each object is loose."""
    files = random_files(tmp_path / f"few{i}", 3, seed=100 + i)
    return repo.log_artifact(Artifact(f"few{i}").add_dir(tmp_path / f"few{i}"), project="p"), files


@pytest.mark.parametrize("in_memory", [10**6, 5])
def test_gc_judges_a_batch_at_a_time_against_a_live_set_in_memory_or_on_disk(
    repo, tmp_path, monkeypatch, in_memory
):
    """With listing batches of 3 and questions of 4 digests, gc deletes exactly the dead
    pack and the dead loose objects and manifests, whether its live set stays in memory
    or (past `in_memory` objects) moves to one scratch database in the cache, holding
    each live object once and gone when gc ends."""
    monkeypatch.setattr(collecting, "_BATCH", 3)
    monkeypatch.setattr(scratch, "_ASKED", 4)
    monkeypatch.setattr(scratch, "_IN_MEMORY", in_memory)
    random_files(tmp_path / "a", 100, seed=1)
    b = random_files(tmp_path / "b", 100, seed=2)
    va = repo.log_artifact(Artifact("a").add_dir(tmp_path / "a"), project="p")
    vb = repo.log_artifact(Artifact("b").add_dir(tmp_path / "b"), project="p")
    # the same bytes twice: one live object
    vb2 = repo.log_artifact(Artifact("b2").add_dir(tmp_path / "b"), project="p")
    few = [_few(repo, tmp_path, i) for i in range(6)]
    for v in (va, *(v for v, _ in few[:3])):
        v.delete()
    before = stored_objects(repo)
    seen: dict[str, object] = {}
    real = collecting._plan

    def plan(conn, live, *args):  # type: ignore[no-untyped-def]
        seen["rows"] = len(live.objects)
        seen["files"] = _scratch_files(repo)
        seen["spilled"] = live.objects.spilled
        return real(conn, live, *args)

    monkeypatch.setattr(collecting, "_plan", plan)

    report = repo.gc(grace=0)

    assert seen["rows"] == 100 + 3 * 3  # b's objects (once for two versions), few3..5's
    assert seen["spilled"] == (in_memory < 100)
    assert len(seen["files"]) == (1 if in_memory < 100 else 0)  # type: ignore[arg-type]
    assert _scratch_files(repo) == []
    assert (report.packs_deleted, report.objects_deleted) == (1, 100 + 3 * 3)
    assert report.manifests_deleted == 4  # a's and few0..2's
    gone = before.keys() - stored_objects(repo).keys()
    assert len(gone) == 100 + 3 * 3  # the dead pack's members, the loose objects
    assert repo.verify().ok
    for v, files in [(vb, b), (vb2, b), *few[3:]]:
        root = v.download(tmp_path / "out" / v.name)
        assert {n: (root / n).read_bytes() for n in files} == files
    assert repo.gc(grace=0).objects_deleted == 0


def test_a_gc_that_fails_while_planning_leaves_no_scratch_and_deletes_nothing(
    repo, tmp_path, monkeypatch
):
    monkeypatch.setattr(scratch, "_IN_MEMORY", 0)  # the live set on disk at once
    v, _ = _few(repo, tmp_path, 0)
    v.delete()
    before = stored_objects(repo)

    def broken(conn):  # type: ignore[no-untyped-def]
        raise RuntimeError("the catalog went away")
        yield  # pragma: no cover

    monkeypatch.setattr(collecting.packs, "each_pack", broken)
    with pytest.raises(RuntimeError, match="went away"):
        repo.gc(grace=0)
    assert _scratch_files(repo) == []
    assert stored_objects(repo) == before


def test_gc_removes_the_scratch_databases_a_killed_gc_or_verify_left(repo, tmp_path):
    """A scratch database over an hour old is a killed run's; a younger one may be
    another run's, still going."""
    _few(repo, tmp_path, 0)
    paths = {
        name: os.path.join(repo.cache.root, name)
        for name in (".tmp-gc-killed.db", ".tmp-verify-killed.db", ".tmp-gc-running.db")
    }
    for path in paths.values():
        write(path, "scratch")
    os.utime(paths[".tmp-gc-killed.db"], (0, 0))
    os.utime(paths[".tmp-verify-killed.db"], (0, 0))
    repo.gc(grace=0)
    assert _scratch_files(repo) == [".tmp-gc-running.db"]
    assert _scratch_files(repo, "verify") == []


@pytest.mark.parametrize("in_memory", [10**6, 0, 20])
def test_a_digest_set_answers_per_namespace_in_memory_and_on_disk(tmp_path, monkeypatch, in_memory):
    """The same answers held in memory, on disk from the start, or moved to disk
    half-way (past 20 digests); a scratch file only once on disk, removed at the end."""
    monkeypatch.setattr(scratch, "_ASKED", 3)
    digests = [f"{i:064x}" for i in range(50)]
    with DigestSet(str(tmp_path), "gc", in_memory=in_memory, batch=7) as live:
        live.add("", digests[:30])
        live.add("", digests[10:20])  # again: kept once
        live.add("vision", digests[25:40])
        assert len(live) == 30 + 15
        assert live.spilled == (in_memory < 45)
        asked = [*digests[::2], digests[0], "not-a-digest"]
        assert live.among("", asked) == set(digests[:30:2])
        assert live.among("vision", asked) == set(digests[26:40:2])
        assert live.among("other", asked) == set()
        assert live.among("", []) == set()
        live.add("other", digests[:1])
        assert live.among("other", asked) == {digests[0]}
        assert len(os.listdir(tmp_path)) == (1 if live.spilled else 0)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "data",
    [
        {"size": 3, "digest": "a" * 64},
        {"size": 9, "digest": "b" * 64, "chunks": [["c" * 64, 4], ["d" * 64, 5]]},
        {"size": 3, "digest": None, "ref": "s3://bucket/key", "pin": {"etag": "x"}},
        {"size": 3, "digest": "e" * 64, "ref": "s3://bucket/key", "pin": {"etag": "x"}},
        {"size": 0, "digest": ""},
        {"kind": "link", "target": "../x"},
        {"kind": "dir"},
    ],
)
def test_the_objects_gc_reads_from_an_entrys_json_are_those_the_entry_needs(data):
    assert Entry.objects_of_json("d/x", data) == Entry.from_json("d/x", data).objects()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"kind": "socket"}, "which this cairn does not know"),
        ({"size": 1, "digest": "a" * 64, "chunks": [["c" * 64]]}, "bad chunks"),
        ({"size": 1, "digest": "a" * 64, "chunks": 7}, "bad chunks"),
    ],
)
def test_an_entry_gc_cannot_read_stops_it(data, problem):
    """A newer cairn's kind, or broken chunks: gc refuses rather than guess what lives."""
    with pytest.raises(IntegrityError, match=problem):
        Entry.objects_of_json("d/x", data)


def _gc_peak_of_dead_files(tmp_path, name: str, n: int) -> tuple[int, object]:
    """The traced peak of a gc that deletes a version of `n` packed files."""
    from cairn import Repository

    root = tmp_path / f"data-{name}"
    for i in range(n):
        write(root / f"d{i // 100:03d}" / f"f{i:05d}.bin", os.urandom(64))
    repo = Repository.open(home=str(tmp_path / f"home-{name}"))
    try:
        repo.log_artifact(Artifact("ds").add_dir(root)).delete()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            report = repo.gc(grace=0)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert report.objects_deleted == n and stored_objects(repo) == {}
        return peak, report
    finally:
        repo.close()


def test_gc_memory_is_flat_in_the_number_of_dead_packed_files(tmp_path, monkeypatch):
    """Packs of about 64 files: a gc deleting ten times the files holds no more, since
    dead packs' index rows are named by pack (a list of every dead packed object, a few
    hundred bytes each, would add about a megabyte)."""
    import cairn.catalog.packs as packs_module
    import cairn.engine.objects as objects_module
    import cairn.engine.transfer as transfer_module

    monkeypatch.setattr(packs_module, "_STREAMED", 64)  # index rows read at a time
    monkeypatch.setattr(objects_module, "PACK_BYTES", 4096)
    monkeypatch.setattr(transfer_module, "WAIT_BYTES", 4096)
    monkeypatch.setattr(transfer_module, "_SMALL_BATCH_FILES", 64)
    small, few = _gc_peak_of_dead_files(tmp_path, "small", 300)
    large, many = _gc_peak_of_dead_files(tmp_path, "large", 3000)
    assert many.packs_deleted > 10 * few.packs_deleted / 2  # type: ignore[attr-defined]
    assert large < small * 1.5 + (256 << 10), (small, large)


def test_gc_spills_what_it_deletes_to_a_file_and_records_it_all(repo, tmp_path, monkeypatch):
    """Past a few entries the keys gc deletes move to an unnamed file in the cache: every
    one is still recorded (in the order decided) and deleted, and no file is left."""
    import cairn.engine.gcrecord as records_module
    from cairn.engine.gcrecord import read_record

    monkeypatch.setattr(records_module, "_IN_MEMORY", 3)
    monkeypatch.setattr(collecting, "_BATCH", 2)
    versions = [_few(repo, tmp_path, i)[0] for i in range(4)]
    for v in versions[:3]:
        v.delete()
    before = stored_objects(repo)
    spilled = []
    real = records_module.DoomedList.append

    def append(self, doomed):  # type: ignore[no-untyped-def]
        real(self, doomed)
        spilled.append(self._file is not None)

    monkeypatch.setattr(records_module.DoomedList, "append", append)
    report = repo.gc(grace=0)
    assert any(spilled)
    # 3 versions x 3 loose objects, and each version's manifest
    assert (report.objects_deleted, report.manifests_deleted) == (9, 3)
    record = read_record(repo.store, report.record)
    keys = [d["key"] for d in record["delete"]]
    objects = {k for k in keys if "/objects/" in k}
    assert len(keys) == 12 and len(objects) == 9
    assert objects == set(before) - set(stored_objects(repo))
    assert len(stored_objects(repo)) == 3  # the live version's
    assert _scratch_files(repo) == [] and not [
        n for n in os.listdir(repo.cache.root) if n.endswith(".json.gz")
    ]


def test_a_gc_record_is_the_canonical_json_of_its_fields(tmp_path):
    """Written a deletion at a time, a record is the bytes of one canonical document."""
    import gzip
    import io
    import json

    from cairn.engine.gcrecord import Doomed, DoomedList, GCRecord

    with DoomedList(str(tmp_path)) as doomed:
        for i in range(5):
            doomed.append(Doomed(f"objects/{i:02x}/x", "", f"{i:064x}", i))
        record = GCRecord(
            repository="r",
            catalog='sqlite:///"delete":[]',  # the marker inside a string is escaped
            started_at="2026-12-01T10:28:08.512+00:00",
            grace_seconds=3600.0,
            delete=doomed,
            manifest_rows=["m"],
            repacked=[{"namespace": "", "pack": "p", "kept": "1"}],
            forgotten=[{"namespace": "", "pack": "q", "objects": 2}],
        )
        out = io.BytesIO()
        record.write(out)
        doc = {
            "format": 1,
            "kind": "gc",
            "repository": "r",
            "catalog": 'sqlite:///"delete":[]',
            "started_at": "2026-12-01T10:28:08.512+00:00",
            "grace_seconds": 3600.0,
            "delete": [
                {"key": f"objects/{i:02x}/x", "namespace": "", "digest": f"{i:064x}", "size": i}
                for i in range(5)
            ],
            "manifest_rows": ["m"],
            "repacked": [{"namespace": "", "pack": "p", "kept": "1"}],
            "forgotten": [{"namespace": "", "pack": "q", "objects": 2}],
        }
        want = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        assert gzip.decompress(out.getvalue()) == want
