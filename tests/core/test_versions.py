"""Versions as users handle them: aliases, editing, deleting, pruning, reading, the cache."""

from __future__ import annotations

import os
import random

import pytest

from cairn import Artifact, Conflict, NotFound

from .conftest import write


def _log(repo, tmp_path, content: str, **kw):
    f = write(tmp_path / "in" / "f.txt", content)
    return repo.log_artifact(Artifact("ds").add_file(f), project="p", **kw)


def test_latest_follows_the_newest_committed_version(repo, tmp_path):
    v0 = _log(repo, tmp_path, "a")
    v1 = _log(repo, tmp_path, "b")
    assert repo.artifact("p/ds").id == v1.id
    v1.delete()
    assert repo.artifact("p/ds:latest").id == v0.id
    assert repo.artifact("p/ds:v0").aliases == ["latest"]


def test_aliases_move_between_versions_and_save_edits_mutable_fields(repo, tmp_path):
    v0 = _log(repo, tmp_path, "a", aliases=["production"])
    v1 = _log(repo, tmp_path, "b")
    v1.aliases.append("production")
    v1.description = "better"
    v1.metadata["acc"] = 0.9
    v1.save()
    assert repo.artifact("p/ds:production").id == v1.id
    assert "production" not in repo.artifact("p/ds:v0").aliases
    fresh = repo.artifact("p/ds:v1")
    assert (fresh.description, fresh.metadata) == ("better", {"acc": 0.9})
    fresh.aliases = ["latest"]  # dropping a user alias
    fresh.save()
    with pytest.raises(NotFound):
        repo.artifact("p/ds:production")
    assert v0.digest != v1.digest


def test_delete_refuses_a_version_with_aliases_unless_asked(repo, tmp_path):
    v0 = _log(repo, tmp_path, "a", aliases=["best"])
    with pytest.raises(Conflict, match="best"):
        v0.delete()
    v0.delete(delete_aliases=True)
    with pytest.raises(NotFound):
        repo.artifact("p/ds:best")


def test_prune_keeps_the_newest_and_every_aliased_version(repo, tmp_path):
    for i in range(5):
        _log(repo, tmp_path, str(i), aliases=["keepme"] if i == 1 else [])
    gone = repo.prune("p/ds", keep=2)
    assert sorted(v.version for v in gone) == ["v0", "v2"]
    assert [v.version for v in repo.versions("p/ds")] == ["v4", "v3", "v1"]


def test_download_copies_from_the_shared_cache_and_hardlinks_only_when_asked(repo, tmp_path):
    big = random.Random(0).randbytes(200_000)
    f = write(tmp_path / "in" / "a.bin", big)
    v = repo.log_artifact(Artifact("ds").add_file(f, name="x/a.bin"), project="p")
    cached = repo.cache.path(v.entry("x/a.bin").digest)
    one = v.download(root=tmp_path / "one") / "x" / "a.bin"
    assert one.read_bytes() == big
    assert os.stat(one).st_ino != os.stat(cached).st_ino  # a copy, writable
    assert os.stat(one).st_mode & 0o200
    one.write_bytes(b"edited")
    assert v.get_path("x/a.bin").read_bytes() == big  # the cache is untouched
    linked = v.download(root=tmp_path / "two", link=True) / "x" / "a.bin"
    three = v.download(root=tmp_path / "three", link=True) / "x" / "a.bin"
    assert os.stat(linked).st_ino == os.stat(three).st_ino == os.stat(cached).st_ino
    assert (os.stat(linked).st_mode & 0o222) == 0  # read-only: one cached copy serves both


def test_open_streams_one_file_with_seek(small_chunks, tmp_path):
    repo = small_chunks
    data = random.Random(5).randbytes(1 << 20)
    v = repo.log_artifact(Artifact("ds").add_file(write(tmp_path / "b.bin", data)), project="p")
    assert len(v.files()[0].chunks) > 10
    with v.open("b.bin") as f:
        f.seek(300_000)
        assert f.read(100_000) == data[300_000:400_000]
        f.seek(-10, os.SEEK_END)
        assert f.read() == data[-10:]


def test_cache_cleanup_evicts_least_recently_used_first(repo, tmp_path):
    versions = []
    for i in range(3):
        f = write(tmp_path / "in" / f"{i}.bin", bytes([i]) * 1000)
        versions.append(repo.log_artifact(Artifact(f"c{i}").add_file(f), project="p"))
    for v in versions:
        v.get_path(v.files()[0].path)
    versions[0].get_path("0.bin")  # most recently used now
    report = repo.cache.cleanup(max_bytes=1500)
    assert (report.files_removed, report.bytes_freed, report.bytes_kept) == (2, 2000, 1000)
    assert repo.cache.has(versions[0].files()[0].digest, 1000)
    assert not repo.cache.has(versions[1].files()[0].digest, 1000)
    # evicted content comes back from the store on demand
    assert versions[1].get_path("1.bin").read_bytes() == bytes([1]) * 1000


def test_lineage_walks_both_ways(repo, tmp_path):
    raw = _log(repo, tmp_path, "raw")
    with repo.run(project="p", name="train", job_type="train") as run:
        used = run.use_artifact("ds:latest")
        model = Artifact("model", type="model")
        with model.new_file("w.bin", "wb") as f:
            f.write(b"weights")
        m = run.log_artifact(model, aliases=["candidate"])
    assert used.id == raw.id
    assert m.logged_by() == run and m.logged_by().job_type == "train"
    assert raw.used_by() == [run]
    assert run.used_artifacts() == [raw] and run.logged_artifacts() == [m]
    assert raw.logged_by() is None


def test_failed_run_is_marked_failed(repo):
    with pytest.raises(RuntimeError), repo.run(project="p", name="boom") as run:
        raise RuntimeError("x")
    assert repo.get_run(run.id).state == "failed"


def test_type_mismatch_is_a_conflict(repo, tmp_path):
    _log(repo, tmp_path, "a")
    f = write(tmp_path / "m", "m")
    with pytest.raises(Conflict, match="dataset"):
        repo.log_artifact(Artifact("ds", type="model").add_file(f), project="p")


def test_log_says_whether_it_created_a_version_and_projects_are_described(repo, tmp_path):
    first = _log(repo, tmp_path, "a")
    again = _log(repo, tmp_path, "a")
    assert (first.created, again.created) == (True, False)
    info = repo.project("p")
    assert (info.name, info.visibility) == ("p", "private")
    with pytest.raises(NotFound):
        repo.project("nope")


def test_a_resumed_run_is_running_again_with_new_attributes(repo):
    with repo.run(project="p", run_id="task-1", attributes={"try": 1}) as first:
        pass
    assert first.state == "finished"
    again = repo.run(project="p", run_id="task-1", attributes={"try": 2})
    assert (again.id, again.state, again.attributes) == ("task-1", "running", {"try": 2})
    assert again.repository is repo


def test_many_threads_open_a_new_catalog_at_once(catalog_url, home):
    """Prefect's default task runner opens repositories from threads on a fresh catalog."""
    from concurrent.futures import ThreadPoolExecutor

    from cairn import Repository

    def open_and_list(_: int) -> list[str]:
        with Repository.open(catalog=catalog_url, home=str(home)) as r:
            return r.projects()

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(open_and_list, range(6))) == [[]] * 6


def test_a_catalog_upgraded_by_a_newer_cairn_is_a_clear_error(catalog_url, home):
    import sqlalchemy

    from cairn import CairnError, Repository

    with Repository.open(catalog=catalog_url, home=str(home)) as r:
        r.projects()
    engine = sqlalchemy.create_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()

    with pytest.raises(CairnError, match="revision 0999, newer than this cairn"):
        Repository.open(catalog=catalog_url, home=str(home))
