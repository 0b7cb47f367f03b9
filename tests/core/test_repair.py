"""Self-healing: a store object that is missing or corrupt is stored again by the next log
of the same bytes, `cairn verify` names every version that needs a bad object, and
`cairn verify --repair` stores good copies found on this machine. On both catalogs.
"""

from __future__ import annotations

import os
import random

import pytest
from sqlalchemy import func, select

from cairn import Artifact
from cairn.catalog import damaged, packs
from cairn.catalog.schema import damaged as damaged_table
from cairn.engine.objects import PACK_MIN
from cairn.foundation.layout import object_key, pack_key

from .conftest import random_files as _files
from .conftest import write


def _path(repo, key: str) -> str:
    return repo.store.local_path(key)


def _flip(path: str, at: int = 10) -> None:
    """Change one byte of a store file in place (objects are read-only)."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def _damaged_rows(repo) -> int:
    with repo.catalog.read() as conn:
        return conn.execute(select(func.count()).select_from(damaged_table)).scalar_one()


def _big(tmp_path, name: str = "big.bin", size: int = 300_000, seed: int = 1) -> bytes:
    """A file above the pack limit: stored as one loose object."""
    data = random.Random(seed).randbytes(size)
    write(tmp_path / "d" / name, data)
    return data


# -- writers heal the store ----------------------------------------------------------------


def test_an_unchanged_relog_stores_a_missing_object_again(repo, tmp_path):
    data = _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    d = v0.entry("big.bin").digest
    repo.store.delete([object_key(d, namespace=v0.namespace)])

    again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")

    assert (again.version, again.created) == ("v0", False)
    assert again.last_log.objects_sent == 1  # the stat cache knew the file; the store did not
    assert repo.verify().ok
    assert (v0.download(tmp_path / "out") / "big.bin").read_bytes() == data


def test_a_corrupt_object_found_by_verify_is_overwritten_by_the_next_log(repo, tmp_path):
    data = _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    d = v0.entry("big.bin").digest
    _flip(_path(repo, object_key(d, namespace=v0.namespace)))
    assert not repo.verify().ok
    assert _damaged_rows(repo) == 1

    again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")

    assert again.last_log.objects_sent == 1  # present, but known to be bad: sent over it
    assert _damaged_rows(repo) == 0  # a good copy is durable: the row went
    assert repo.verify().ok
    assert (v0.download(tmp_path / "out") / "big.bin").read_bytes() == data


def test_a_corrupt_object_is_overwritten_by_a_log_into_another_collection(repo, tmp_path):
    _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    _flip(_path(repo, object_key(v0.entry("big.bin").digest, namespace=v0.namespace)))
    repo.verify()

    other = repo.log_artifact(Artifact("copy").add_dir(tmp_path / "d"), project="p")

    assert other.last_log.objects_sent == 1
    assert repo.verify().ok  # v0 reads the repaired object too


def test_a_pack_lost_behind_cairns_back_is_sent_again_by_the_next_log(repo, tmp_path):
    files = _files(tmp_path / "d", 40)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    (member,) = repo.objects.locate(v0.namespace, [v0.entry("f/0000.bin").digest]).values()
    os.unlink(_path(repo, pack_key(member.pack, namespace=v0.namespace)))

    again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")

    assert (again.version, again.last_log.objects_sent) == ("v0", 40)
    where = repo.objects.locate(v0.namespace, [e.digest for e in v0.files()])
    assert len(where) == 40  # packed again (the same bytes make the same pack)
    assert repo.store.exists_many(
        [pack_key(m.pack, namespace=v0.namespace) for m in where.values()]
    )
    assert _damaged_rows(repo) == 0 and repo.verify().ok
    out = v0.download(tmp_path / "out")
    assert {n: (out / n).read_bytes() for n in files} == files


def test_a_corrupt_packed_object_is_sent_again_loose_and_reads_move_to_it(repo, tmp_path):
    files = _files(tmp_path / "d", 40)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    victim = v0.entry("f/0007.bin").digest
    (member,) = repo.objects.locate(v0.namespace, [victim]).values()
    _flip(_path(repo, pack_key(member.pack, namespace=v0.namespace)), member.start + 10)
    report = repo.verify()
    assert [b.digest for b in report.bad] == [victim]

    again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")

    assert again.last_log.objects_sent == 1
    assert victim not in repo.objects.locate(v0.namespace, [victim])  # loose now
    assert repo.store.exists_many([object_key(victim, namespace=v0.namespace)])
    assert repo.verify().ok
    repo.gc(grace=0)  # the pack stays (its other objects are live), the loose copy too
    assert repo.verify().ok
    out = v0.download(tmp_path / "out")
    assert {n: (out / n).read_bytes() for n in files} == files


def test_many_corrupt_packed_objects_are_sent_again_as_a_new_pack(repo, tmp_path):
    files = _files(tmp_path / "d", 2 * PACK_MIN)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    victims = [v0.entry(f"f/{i:04d}.bin").digest for i in range(PACK_MIN)]
    where = repo.objects.locate(v0.namespace, victims)
    old = {m.pack for m in where.values()}
    for m in where.values():
        _flip(_path(repo, pack_key(m.pack, namespace=v0.namespace)), m.start + 1)
    assert len(repo.verify().bad) == PACK_MIN

    again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")

    assert again.last_log.objects_sent == PACK_MIN
    moved = repo.objects.locate(v0.namespace, victims)
    assert len(moved) == PACK_MIN and not {m.pack for m in moved.values()} & old
    assert _damaged_rows(repo) == 0 and repo.verify().ok
    out = v0.download(tmp_path / "out")
    assert {n: (out / n).read_bytes() for n in files} == files


def test_an_upsert_stores_a_missing_object_again(repo, tmp_path):
    _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    repo.store.delete([object_key(v0.entry("big.bin").digest, namespace=v0.namespace)])

    part = repo.upsert_artifact(
        Artifact("ds").add_dir(tmp_path / "d"), project="p", distributed_id="g", writer_id="w"
    )

    assert part.last_log.objects_sent == 1
    assert repo.verify(v0.ref).ok


def test_a_healthy_relog_sends_nothing_and_keeps_the_catalog_as_it_was(repo, tmp_path):
    _files(tmp_path / "d", 40)
    _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    assert (again, again.last_log.objects_sent, again.last_log.files_hashed) == (v0, 0, 0)
    assert _damaged_rows(repo) == 0


def test_presence_asks_one_key_per_pack(repo, tmp_path, monkeypatch):
    from cairn.engine.objects import presence

    _files(tmp_path / "d", 40)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    asked = []
    real = repo.store.exists_many
    monkeypatch.setattr(
        repo.store, "exists_many", lambda keys: asked.append(list(keys)) or real(keys)
    )
    with repo.catalog.read() as conn:
        found = presence(repo.store, conn, v0.namespace, v0.manifest.objects())
    assert found.present == v0.manifest.objects() and not found.repair
    assert len(asked) == 1 and len(asked[0]) == 1  # 40 packed objects: their one pack


def test_packs_split_tells_packed_from_loose_on_both_catalogs(repo, tmp_path):
    _files(tmp_path / "d", 20)
    _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    big = v0.entry("big.bin").digest
    with repo.catalog.read() as conn:
        holding, loose = packs.split(conn, v0.namespace, [*v0.manifest.objects(), "f" * 64])
        assert len(holding) == 1 and loose == {big, "f" * 64}
        assert packs.split(conn, v0.namespace, []) == (set(), set())
        assert packs.split(conn, "elsewhere", [big]) == (set(), {big})


# -- verify names every version that needs a bad object -------------------------------------


def test_store_wide_verify_lists_every_version_that_needs_a_bad_object(repo, tmp_path):
    _big(tmp_path)
    repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    write(tmp_path / "d" / "other.txt", "v1 adds a file")
    repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    copy = Artifact("copy").add_file(tmp_path / "d" / "big.bin", name="renamed.bin")
    v = repo.log_artifact(copy, project="p")
    d = v.entry("renamed.bin").digest
    repo.store.delete([object_key(d, namespace=v.namespace)])

    report = repo.verify()

    (bad,) = report.bad
    assert (bad.digest, bad.problem) == (d, damaged.MISSING)
    assert bad.versions == ["p/copy:v0", "p/ds:v1", "p/ds:v0"]  # as `cairn ls` lists them
    assert report.affected == bad.versions
    assert report.missing == [
        f"p/copy:v0 renamed.bin (object {d} in projects/p/)",
        f"p/ds:v1 big.bin (object {d} in projects/p/)",
        f"p/ds:v0 big.bin (object {d} in projects/p/)",
    ]
    text = str(report)
    assert f"missing: object {d} in projects/p/, needed by 3 versions:" in text
    assert "  p/ds:v1 big.bin" in text
    assert "versions that need a bad object: p/copy:v0, p/ds:v1, p/ds:v0" in text


def test_verify_clears_what_reads_back_intact_again(repo, tmp_path):
    data = _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    key = object_key(v0.entry("big.bin").digest, namespace=v0.namespace)
    repo.store.delete([key])
    repo.verify()
    assert _damaged_rows(repo) == 1
    repo.store.put(key, data)  # put back by hand
    assert repo.verify().ok and _damaged_rows(repo) == 0


# -- verify --repair ----------------------------------------------------------------------


def test_repair_stores_a_good_copy_from_the_cache(repo, tmp_path):
    data = _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    v0.download(tmp_path / "checkout")  # the cache holds the file now
    os.unlink(tmp_path / "d" / "big.bin")  # and only the cache
    d = v0.entry("big.bin").digest
    _flip(_path(repo, object_key(d, namespace=v0.namespace)))

    report = repo.verify(repair=True)

    assert report.ok and report.repaired == [(d, "the cache")]
    assert "repaired" in str(report) and repo.verify().ok and _damaged_rows(repo) == 0
    repo.cache.cleanup(max_bytes=0)
    assert (v0.download(tmp_path / "out") / "big.bin").read_bytes() == data


def test_repair_finds_a_copy_in_a_folder_by_path_and_by_content(repo, tmp_path):
    files = _files(tmp_path / "d", 3, size=2000)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    checkout = tmp_path / "checkout"
    v0.download(checkout, link=False)
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "renamed.bin", files["f/0001.bin"])
    write(elsewhere / "decoy.bin", os.urandom(2000))  # same size, other bytes: not used
    repo.cache.cleanup(max_bytes=0)
    for name in files:
        os.unlink(tmp_path / "d" / name)
    digests = [v0.entry(n).digest for n in ("f/0000.bin", "f/0001.bin")]
    repo.store.delete([object_key(d, namespace=v0.namespace) for d in digests])

    report = repo.verify(repair=True, folders=[str(tmp_path / "nowhere-useful"), str(elsewhere)])
    assert [b.digest for b in report.bad] == sorted(digests[:1])  # only f/0001 was found
    assert report.repaired == [(digests[1], str(elsewhere / "renamed.bin"))]
    assert report.affected == ["p/ds:v0"] and "not repaired: no good copy" in str(report)

    report = repo.verify(repair=True, folders=[str(checkout)])
    assert report.ok
    assert report.repaired == [(digests[0], str(checkout / "f" / "0000.bin"))]
    out = v0.download(tmp_path / "out")
    assert {n: (out / n).read_bytes() for n in files} == files


def test_repair_takes_a_chunk_from_the_large_file_it_was_cut_from(small_chunks, tmp_path):
    repo = small_chunks
    data = random.Random(3).randbytes(400_000)
    write(tmp_path / "d" / "large.bin", data)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    chunks = v0.entry("large.bin").chunks
    assert len(chunks) > 3
    victim = chunks[2].digest
    repo.store.delete([object_key(victim, namespace=v0.namespace)])
    os.rename(tmp_path / "d" / "large.bin", tmp_path / "moved.bin")  # the stat cache is stale

    report = repo.verify(repair=True, folders=[str(tmp_path)])

    assert report.ok and report.repaired == [(victim, str(tmp_path / "moved.bin"))]
    assert (v0.download(tmp_path / "out") / "large.bin").read_bytes() == data


def test_repair_takes_a_copy_from_a_file_logged_from_this_machine(small_chunks, tmp_path):
    repo = small_chunks
    data = random.Random(4).randbytes(400_000)
    write(tmp_path / "d" / "large.bin", data)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    victim = v0.entry("large.bin").chunks[-1].digest
    _flip(_path(repo, object_key(victim, namespace=v0.namespace)), 0)

    report = repo.verify(repair=True)

    source = f"{tmp_path / 'd' / 'large.bin'} (logged from this machine)"
    assert report.ok and report.repaired == [(victim, source)]
    assert (v0.download(tmp_path / "out") / "large.bin").read_bytes() == data


def test_repair_never_stores_bytes_that_do_not_match(repo, tmp_path):
    _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    d = v0.entry("big.bin").digest
    repo.store.delete([object_key(d, namespace=v0.namespace)])
    _big(tmp_path, seed=99)  # the file at the same path now holds other bytes
    write(tmp_path / "other" / "big.bin", os.urandom(300_000))

    report = repo.verify(repair=True, folders=[str(tmp_path / "other")])

    assert not report.ok and report.repaired == [] and report.affected == ["p/ds:v0"]
    assert not repo.store.exists_many([object_key(d, namespace=v0.namespace)])


# -- the download cache -------------------------------------------------------------------


def test_verify_drops_a_cache_file_edited_through_a_hardlinked_checkout(repo, tmp_path):
    data = _big(tmp_path)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    checkout = tmp_path / "checkout"
    v0.download(checkout, link=True)
    linked = checkout / "big.bin"
    d = v0.entry("big.bin").digest
    if os.stat(linked).st_ino != os.stat(repo.cache.path(d)).st_ino:
        pytest.skip("this file system gave a copy, not a hardlink")
    before = os.stat(linked)
    os.chmod(linked, 0o644)  # what a user does to edit a read-only file
    with open(linked, "r+b") as f:
        f.write(b"edited")
    os.utime(linked, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and mtime

    report = repo.verify()

    assert report.ok  # the store is fine
    assert report.cache_dropped == [d] and "cache: dropped 1 file" in str(report)
    assert linked.read_bytes().startswith(b"edited")  # the user's file is theirs
    assert (v0.download(tmp_path / "again", link=False) / "big.bin").read_bytes() == data
    assert repo.verify(v0.ref).cache_dropped == []


# -- the catalog table --------------------------------------------------------------------


def test_migration_0006_adds_the_damaged_table_and_downgrades_cleanly(catalog_url, home, tmp_path):
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.pool import NullPool

    from cairn import Repository

    from .conftest import migrate_to

    def layout() -> tuple[set[str], set[str]]:
        engine = create_engine(catalog_url, poolclass=NullPool)
        try:
            found = inspect(engine)
            return set(found.get_table_names()), {i["name"] for i in found.get_indexes("packed")}
        finally:
            engine.dispose()

    home.mkdir(parents=True, exist_ok=True)
    migrate_to(catalog_url, "0005")
    assert "damaged" not in layout()[0]
    migrate_to(catalog_url, "0006")
    tables, indexes = layout()
    assert {"damaged", "pack_epochs"} <= tables and "ix_packed_digest_pack" in indexes
    migrate_to(catalog_url, "0005", down=True)
    tables, indexes = layout()
    assert not {"damaged", "pack_epochs"} & tables and indexes == {"ix_packed_pack"}
    _big(tmp_path)
    with Repository.open(catalog=catalog_url, home=str(home)) as repo:  # upgrades again
        v = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
        repo.store.delete([object_key(v.entry("big.bin").digest, namespace=v.namespace)])
        assert not repo.verify().ok and _damaged_rows(repo) == 1


def test_a_relog_trusts_where_it_found_objects_only_while_none_changed_place(repo, tmp_path):
    """What a machine remembers of where a version's objects are stands while the pack
    index epoch does: a repair that moves an object out of its pack bumps the epoch, so
    the next re-log looks again and finds the moved copy gone."""
    _files(tmp_path / "d", 40)
    v0 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")  # remembers: 1 pack
    victim = v0.entry("f/0007.bin").digest
    (member,) = repo.objects.locate(v0.namespace, [victim]).values()
    with repo.catalog.read() as conn:
        before = packs.epoch(conn, v0.namespace)
    _flip(_path(repo, pack_key(member.pack, namespace=v0.namespace)), member.start + 3)
    repo.verify()
    healed = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    assert healed.last_log.objects_sent == 1  # now loose; the pack still holds the bad copy
    with repo.catalog.read() as conn:
        assert packs.epoch(conn, v0.namespace) > before
    repo.store.delete([object_key(victim, namespace=v0.namespace)])

    again = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")

    assert again.last_log.objects_sent == 1  # the pack it remembered is there; the object is not
    assert repo.verify().ok


def test_the_pack_index_epoch_moves_when_rows_go_and_not_when_rows_come(repo):
    from cairn.catalog.packs import Member

    with repo.catalog.write() as conn:
        assert packs.epoch(conn, "p") == 0
        packs.record(conn, "p", [Member("a" * 64, "b" * 64, 0, 1)])
        assert packs.epoch(conn, "p") == 0
        packs.forget(conn, "p", [])
        assert packs.epoch(conn, "p") == 0
        packs.forget(conn, "p", ["a" * 64])
        packs.forget(conn, "p", ["c" * 64])
        assert (packs.epoch(conn, "p"), packs.epoch(conn, "")) == (2, 0)


def test_verify_of_many_packed_objects_reads_them_by_runs_of_their_packs(
    repo, tmp_path, monkeypatch
):
    """What verify needs is kept in a scratch database in the cache, not in memory, and
    read back a batch at a time (here batches of 50): each object once, packed ones by
    runs of their packs, one packed object bad among them; no scratch file is left."""
    import cairn.engine.verify as verifying

    monkeypatch.setattr(verifying, "_BATCH", 50)
    monkeypatch.setattr(verifying, "_PACKED_SLICE", 16)
    files = {f"d{i % 4}/f{i:03}.txt": f"file {i}\n" * 3 for i in range(300)}
    for name, text in files.items():
        write(tmp_path / "d" / name, text)
    repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    write(tmp_path / "d" / "d0" / "f000.txt", "changed\n")
    v1 = repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    bad = v1.entry("d1/f001.txt").digest
    with repo.catalog.read() as conn:
        where = packs.lookup(conn, v1.namespace, [bad])[bad]
    _flip(_path(repo, pack_key(where.pack, namespace=v1.namespace)), at=where.start)
    ranges: list[str] = []
    real = type(repo.store).get_range

    def counted(self, key, start, end):  # type: ignore[no-untyped-def]
        ranges.append(key)
        return real(self, key, start, end)

    monkeypatch.setattr(type(repo.store), "get_range", counted)

    report = repo.verify()

    assert report.objects_checked == 301  # 300 files and the changed one, each once
    assert [(b.digest, b.problem) for b in report.bad] == [(bad, damaged.CORRUPT)]
    assert report.bad[0].versions == ["p/ds:v1", "p/ds:v0"]
    assert 0 < len(ranges) <= 301 // 16 + 2  # runs of a pack, not an object at a time
    leftovers = [n for n in os.listdir(repo.cache.root) if n.startswith(".tmp-verify-")]
    assert leftovers == []


def test_verify_removes_the_scratch_database_a_killed_verify_left(repo, tmp_path):
    _big(tmp_path)
    repo.log_artifact(Artifact("ds").add_dir(tmp_path / "d"), project="p")
    old = os.path.join(repo.cache.root, ".tmp-verify-killed.db")
    young = os.path.join(repo.cache.root, ".tmp-verify-running.db")
    for path in (old, young):
        write(path, "scratch")
    os.utime(old, (0, 0))
    assert repo.verify().ok
    assert not os.path.exists(old) and os.path.exists(young)  # another verify's, running
