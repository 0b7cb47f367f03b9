"""Concurrent writers as real processes, on SQLite and PostgreSQL (invariants 3, 7, 8)."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

from cairn import Artifact, Repository

_ctx = mp.get_context("spawn")


def _open(catalog: str, home: str) -> Repository:
    return Repository.open(catalog=catalog, home=home)


def _log_one(catalog: str, home: str, src: str, i: int) -> int:
    path = os.path.join(src, f"f{i}.txt")
    with open(path, "w") as f:
        f.write(f"writer {i}")
    with _open(catalog, home) as repo:
        return repo.log_artifact(Artifact("ds").add_file(path, name="f.txt"), project="p").index


def _upsert_one(catalog: str, home: str, src: str, i: int) -> None:
    path = os.path.join(src, f"part-{i}.csv")
    with open(path, "w") as f:
        f.write(f"{i},{i * i}\n" * 100)
    with _open(catalog, home) as repo:
        art = Artifact("table").add_file(path, name=f"parts/part-{i:02d}.csv")
        repo.upsert_artifact(art, project="p", distributed_id="job-1", writer_id=str(i))


def _churn(catalog: str, home: str, src: str, i: int) -> None:
    """Log, delete and re-log the same content: the re-log dedups against an object that
    only a deleted version references, which is exactly what a racing gc could drop."""
    path = os.path.join(src, f"churn-{i}.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(1000) * (i + 1))
    with _open(catalog, home) as repo:
        for round_ in range(6):
            art = Artifact(f"c{i}").add_file(path, name="data.bin")
            v = repo.log_artifact(art, project="p")
            if round_ % 2 == 0:
                v.delete()


def _churn_packed(catalog: str, home: str, src: str, i: int) -> None:
    """The same with 40 small files (one pack) of which another collection keeps 10: gc
    deletes or rewrites the pack while the re-log dedups against it."""
    folder = os.path.join(src, f"many-{i}")
    os.makedirs(folder)
    for j in range(40):
        with open(os.path.join(folder, f"{j:02d}.bin"), "wb") as f:
            f.write(os.urandom(500))
    with _open(catalog, home) as repo:
        for round_ in range(6):
            v = repo.log_artifact(Artifact(f"m{i}").add_dir(folder), project="p")
            keep = Artifact(f"k{i}")
            for j in range(0, 40, 4):
                keep.add_file(os.path.join(folder, f"{j:02d}.bin"), name=f"{j:02d}.bin")
            if round_ == 3:
                repo.log_artifact(keep, project="p")
            if round_ % 2 == 0:
                v.delete()


def _gc_loop(catalog: str, home: str, seconds: float) -> int:
    runs = 0
    with _open(catalog, home) as repo:
        deadline = time.time() + seconds
        while time.time() < deadline:
            repo.gc(grace=0)
            runs += 1
    return runs


def _pool_run(fn, args_list):  # type: ignore[no-untyped-def]
    with _ctx.Pool(len(args_list)) as pool:
        return pool.starmap(fn, args_list)


def _beside_gc(catalog: str, home: str, src: str, *writers) -> None:  # type: ignore[no-untyped-def]
    """Run each (writer function, count) as that many processes, one batch after the
    other, while another process runs gc in a loop."""
    gc = _ctx.Process(target=_gc_loop, args=(catalog, home, 6.0))
    gc.start()
    try:
        for fn, n in writers:
            _pool_run(fn, [(catalog, home, src, i) for i in range(n)])
    finally:
        gc.join(30)
    assert gc.exitcode == 0


def test_invariant_3_sixteen_processes_get_sixteen_gap_free_versions(
    repo, catalog_url, home, tmp_path
):
    src = str(tmp_path)
    indices = _pool_run(_log_one, [(catalog_url, str(home), src, i) for i in range(16)])
    assert sorted(indices) == list(range(16))
    assert sorted(v.index for v in repo.versions("p/ds")) == list(range(16))
    assert repo.artifact("p/ds:latest").index == 15


def test_invariant_7_thirty_two_processes_upsert_one_version_and_lose_none(
    repo, catalog_url, home, tmp_path
):
    _pool_run(_upsert_one, [(catalog_url, str(home), str(tmp_path), i) for i in range(32)])
    v = repo.finish_artifact(Artifact("table"), project="p", distributed_id="job-1")
    assert [e.path for e in v.files()] == [f"parts/part-{i:02d}.csv" for i in range(32)]
    assert len(v.contributors()) == 0  # writers without runs: parts, not lineage
    assert repo.verify(v.ref).ok


def test_invariant_8_gc_in_a_loop_beside_writers_never_drops_live_content(
    repo, catalog_url, home, tmp_path
):
    _beside_gc(catalog_url, str(home), str(tmp_path), (_churn, 4), (_upsert_one, 4))
    v = repo.finish_artifact(Artifact("table"), project="p", distributed_id="job-1")
    assert len(v.files()) == 4
    report = repo.verify()
    assert report.ok, str(report)
    assert report.versions_checked == 4 + 1  # each churn collection keeps its last log
    repo.gc(grace=0)
    assert repo.verify().ok


def test_invariant_8_holds_for_packs_gc_deletes_and_rewrites_beside_writers(
    repo, catalog_url, home, tmp_path
):
    _beside_gc(catalog_url, str(home), str(tmp_path), (_churn_packed, 3))
    report = repo.verify()
    assert report.ok, str(report)
    assert report.versions_checked == 3 * 2  # each m<i> keeps its last log, and k<i>
    for i in range(3):
        repo.artifact(f"p/m{i}").delete()
    final = repo.gc(grace=0)
    assert final.packs_rewritten + final.packs_deleted >= 1
    assert repo.verify().ok


def _open_new_catalog(url: str, ready, start) -> str:  # type: ignore[no-untyped-def]
    from cairn.catalog import Catalog

    ready.wait()  # every process has imported cairn
    start.wait()
    Catalog(url).close()
    return url


def test_processes_creating_one_new_sqlite_catalog_at_once_all_open_it(tmp_path):
    """Parallel tasks that are the first to use a repository all create its schema: one
    upgrades it in one transaction holding the write lock, the others find it at head
    (never half way: 'table damaged already exists', seen once from a Prefect worker)."""
    for round_ in range(3):
        url = f"sqlite:///{tmp_path}/catalog-{round_}.db"
        n = 6
        ready, start = _ctx.Barrier(n), _ctx.Barrier(n)
        procs = [_ctx.Process(target=_open_new_catalog, args=(url, ready, start)) for _ in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * n, round_
