"""Packs: many small objects in one store object (docs/FORMAT.md "Packs"), on both catalogs.

A log of many small files sends them as a few packs; every read, verify, gc and draft
finds them there as it would find loose objects.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from cairn import Artifact
from cairn.catalog.schema import packed
from cairn.engine.objects import build, read_index
from cairn.foundation.errors import IntegrityError
from cairn.foundation.layout import (
    OBJECTS,
    PACKS,
    PROJECTS,
    digest_of_object_key,
    digest_of_pack_key,
    pack_key,
)

from .conftest import random_files as _files
from .conftest import stored_objects, write


def _layout(repo) -> tuple[list[str], list[str]]:
    """(loose object keys, pack keys) in every namespace."""
    keys = [o.key for o in (*repo.store.list(OBJECTS), *repo.store.list(PACKS))]
    keys += [o.key for o in repo.store.list(PROJECTS)]
    loose = [k for k in keys if digest_of_object_key(k)]
    return loose, [k for k in keys if digest_of_pack_key(k)]


def _indexed(repo) -> int:
    with repo.catalog.read() as conn:
        return conn.execute(select(func.count()).select_from(packed)).scalar_one()


def _pack_path(repo, key: str) -> str:
    return os.path.join(repo.store.root, *key.split("/"))


def test_many_small_files_are_one_pack_and_read_back(repo, tmp_path):
    files = _files(tmp_path / "d", 300)
    v = repo.log_artifact(Artifact("many").add_dir(tmp_path / "d"), project="p")

    loose, packs = _layout(repo)
    assert (loose, len(packs)) == ([], 1)
    assert _indexed(repo) == 300
    assert (v.last_log.objects_sent, v.last_log.bytes_sent) == (300, 300 * 1000)
    (members,) = [read_index(digest_of_pack_key(k)[1], repo.store.get(k)) for k in packs]
    assert sorted(m.digest for m in members) == sorted(e.digest for e in v.files())

    root = v.download(tmp_path / "out")
    assert {n: (root / n).read_bytes() for n in files} == files
    with v.open("f/0123.bin") as f:
        f.seek(500)
        assert f.read(100) == files["f/0123.bin"][500:600]
    assert repo.verify().ok


def test_a_few_small_files_stay_loose(repo, tmp_path):
    _files(tmp_path / "d", 5)
    repo.log_artifact(Artifact("few").add_dir(tmp_path / "d"), project="p")
    loose, packs = _layout(repo)
    assert (len(loose), packs) == (5, [])
    assert _indexed(repo) == 0


def test_a_new_version_sends_only_what_changed_and_dedups_against_packs(repo, tmp_path):
    files = _files(tmp_path / "d", 200)
    repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    for i in range(5):
        files[f"f/{i:04d}.bin"] = os.urandom(1000)
        write(tmp_path / "d" / f"f/{i:04d}.bin", files[f"f/{i:04d}.bin"])
    v1 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    assert (v1.version, v1.last_log.objects_sent) == ("v1", 5)
    # the same bytes under another name in another collection: nothing is sent
    other = repo.log_artifact(Artifact("copy").add_dir(tmp_path / "d"), project="p")
    assert other.last_log.objects_sent == 0
    root = v1.download(tmp_path / "out")
    assert {n: (root / n).read_bytes() for n in files} == files


def test_gc_deletes_a_dead_pack_and_rewrites_a_mostly_dead_one(repo, tmp_path):
    _files(tmp_path / "a", 100, seed=1)
    b = _files(tmp_path / "b", 100, seed=2)
    va = repo.log_artifact(Artifact("a").add_dir(tmp_path / "a"), project="p")
    vb = repo.log_artifact(Artifact("b").add_dir(tmp_path / "b"), project="p")
    assert len(_layout(repo)[1]) == 2

    va.delete()
    report = repo.gc(grace=0)
    assert (report.packs_deleted, report.packs_rewritten, report.objects_deleted) == (1, 0, 100)
    assert len(_layout(repo)[1]) == 1 and _indexed(repo) == 100

    # keep 20 of b's files alive in another version; b itself goes: 80% of its pack is dead
    keep = sorted(b)[:20]
    art = Artifact("c")
    for name in keep:
        art.add_file(tmp_path / "b" / name, name=name)
    vc = repo.log_artifact(art, project="p")
    assert vc.last_log.objects_sent == 0
    vb.delete()
    before = sum(stored_objects(repo).values())
    dry = repo.gc(dry_run=True, grace=0)
    assert (dry.packs_rewritten, dry.objects_deleted) == (1, 80)
    report = repo.gc(grace=0)
    assert (report.packs_deleted, report.packs_rewritten, report.objects_deleted) == (0, 1, 80)
    assert "rewrote 1" in str(report)
    loose, packs = _layout(repo)
    assert (loose, len(packs), _indexed(repo)) == ([], 1, 20)
    assert sum(stored_objects(repo).values()) == before - 80 * 1000
    assert repo.verify().ok
    root = vc.download(tmp_path / "out")
    assert {n: (root / n).read_bytes() for n in keep} == {n: b[n] for n in keep}
    assert repo.gc(grace=0).objects_deleted == 0  # a rewritten pack is all live


def test_a_reader_that_located_an_object_before_gc_rewrote_its_pack_still_reads_it(repo, tmp_path):
    _files(tmp_path / "a", 100, seed=3)
    va = repo.log_artifact(Artifact("a").add_dir(tmp_path / "a"), project="p")
    keep = va.files()[:10]
    art = Artifact("k")
    for e in keep:
        art.add_file(tmp_path / "a" / e.path, name=e.path)
    repo.log_artifact(art, project="p")
    where = repo.objects.locate(va.namespace, [e.digest for e in keep])
    assert len(where) == 10
    va.delete()
    assert repo.gc(grace=0).packs_rewritten == 1
    # the places found before gc are stale now
    got = repo.objects.get_many(va.namespace, [e.digest for e in keep], where=where)
    assert not got.failed
    assert {d: len(data) for d, data in got.ok.items()} == {e.digest: e.size for e in keep}


def test_a_lost_pack_is_reported_forgotten_by_gc_and_sent_again(repo, tmp_path):
    _files(tmp_path / "d", 50)
    v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    (pack,) = _layout(repo)[1]
    os.unlink(_pack_path(repo, pack))

    report = repo.verify()
    assert len(report.missing) == 50 and not report.corrupt
    with pytest.raises(IntegrityError, match="missing from the store"):
        v.download(tmp_path / "out")
    repo.gc(grace=0)
    assert _indexed(repo) == 0  # writers no longer count on the lost pack
    again = repo.log_artifact(Artifact("again").add_dir(tmp_path / "d"), project="p")
    assert again.last_log.objects_sent == 50
    assert repo.verify(again.ref).ok


def test_a_corrupt_packed_object_is_reported_and_never_served(repo, tmp_path):
    files = _files(tmp_path / "d", 40)
    v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    (pack,) = _layout(repo)[1]
    victim = v.entry("f/0007.bin")
    (member,) = repo.objects.locate(v.namespace, [victim.digest]).values()
    path = _pack_path(repo, pack)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(member.start + 10)
        f.write(bytes([files["f/0007.bin"][10] ^ 0xFF]))

    report = repo.verify()
    assert len(report.corrupt) == 1 and "f/0007.bin" in report.corrupt[0]
    with pytest.raises(IntegrityError, match="does not match its digest"):
        v.download(tmp_path / "out")
    with pytest.raises(IntegrityError, match="corrupt"), v.open("f/0007.bin") as f:
        f.read()


def test_a_put_that_fails_half_way_keeps_the_packs_that_arrived(repo, tmp_path, monkeypatch):
    monkeypatch.setattr("cairn.engine.objects.PACK_BYTES", 16 << 10)  # ~4 files per pack
    monkeypatch.setattr("cairn.engine.transfer.PACK_MIN", 2)
    _files(tmp_path / "d", 60, size=4000)
    put = repo.store.put
    calls = []

    def flaky(key, data):
        if digest_of_pack_key(key):
            calls.append(key)
            if len(calls) == 6:
                raise OSError("connection reset")
        put(key, data)

    monkeypatch.setattr(repo.store, "put", flaky)
    with pytest.raises(OSError, match="connection reset"):
        repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    arrived = _indexed(repo)
    assert 0 < arrived < 60
    monkeypatch.setattr(repo.store, "put", put)
    v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    assert v.last_log.objects_sent == 60 - arrived  # only what had not arrived
    assert repo.verify().ok


def test_gc_keeps_a_leased_pack_not_yet_indexed_and_deletes_an_orphan(repo, tmp_path, monkeypatch):
    from cairn.engine import staging

    orphan, data, _ = build([("0" * 64, b"x" * 10)])  # a writer that died before indexing
    orphan_key = pack_key(orphan, namespace="")
    repo.store.put(orphan_key, data)
    reports = []
    record = staging._PackIndex.record

    def gc_first(self, members):
        reports.append(repo.gc(grace=0))  # the pack is stored and leased, its rows not written
        record(self, members)

    monkeypatch.setattr(staging._PackIndex, "record", gc_first)
    files = _files(tmp_path / "d", 30)
    v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    assert reports and reports[0].packs_deleted == 1  # the orphan, not the writer's pack
    assert orphan_key not in _layout(repo)[1]
    root = v.download(tmp_path / "out")
    assert {n: (root / n).read_bytes() for n in files} == files


def test_a_private_project_packs_in_its_own_namespace_and_a_draft_copies_packed_objects(
    repo, tmp_path
):
    repo.create_project("pub", visibility="public")
    files = _files(tmp_path / "d", 60)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="pub")
    repo.set_visibility("pub", "private")
    extra = write(tmp_path / "extra.txt", "new")
    v1 = repo.log_artifact(v0.new_draft().add_file(extra), project="pub")
    assert v1.namespace == "pub"
    _, packs = _layout(repo)
    assert sorted(k.startswith(f"{PROJECTS}pub/{PACKS}") for k in packs) == [False, True]
    assert v1.last_log.objects_sent == 61  # the shared copies are copied in, as a pack
    root = v1.download(tmp_path / "out")
    assert {n: (root / n).read_bytes() for n in files} == files
    assert repo.verify().ok


def test_read_index_refuses_what_is_not_a_pack():
    pack, data, members = build([("a" * 64, b"hello"), ("b" * 64, b"world!")])
    assert [(m.start, m.size) for m in read_index(pack, data)] == [(0, 5), (5, 6)]
    assert data[members[1].start : members[1].start + members[1].size] == b"world!"
    with pytest.raises(IntegrityError, match="trailer"):
        read_index(pack, data[:-1])


def test_migration_0004_adds_the_pack_index_and_downgrades_cleanly(catalog_url, home, tmp_path):
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.pool import NullPool

    from .conftest import migrate_to

    def tables() -> set[str]:
        engine = create_engine(catalog_url, poolclass=NullPool)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    home.mkdir(parents=True, exist_ok=True)
    migrate_to(catalog_url, "0003")
    assert "packed" not in tables() and "versions" in tables()
    migrate_to(catalog_url, "0004")
    assert "packed" in tables()
    migrate_to(catalog_url, "0003", down=True)
    assert "packed" not in tables()
    # a catalog upgraded again by Repository.open takes packs
    from cairn import Repository

    _files(tmp_path / "d", 20)
    with Repository.open(catalog=catalog_url, home=str(home)) as repo:
        v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
        assert _indexed(repo) == 20 and repo.verify(v.ref).ok
