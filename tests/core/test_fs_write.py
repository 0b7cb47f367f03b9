"""Writing through cairn://: each call one version, `with fs.transaction:` one version,
pinned versions refused, concurrent writers merged or refused (never a lost update)."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pytest
from sqlalchemy import text

from cairn import Artifact, Conflict, CurrentRuns, Repository
from cairn.fs import CairnFileSystem

_ctx = mp.get_context("spawn")


@pytest.fixture
def fs(repo):
    return CairnFileSystem(repository=repo, skip_instance_cache=True)


def files_of(repo, ref):
    v = repo.artifact(ref)
    return {e.path: v.open(e.path).read() for e in v.files() if e.is_file}


def test_each_write_outside_a_transaction_commits_one_version_from_the_latest(repo, fs):
    fs.pipe("cairn://demo/sales/a.csv", b"a,1\n")
    assert [v.version for v in fs.committed] == ["v0"]
    with fs.open("demo/sales/b.csv", "wb") as f:
        f.write(b"b,2\n")
    fs.pipe({"demo/sales/c.csv": b"c", "demo/sales/d/e.csv": b"e"})  # one call, one version
    assert [v.version for v in repo.versions("demo/sales")] == ["v2", "v1", "v0"]
    assert files_of(repo, "demo/sales:v2") == {
        "a.csv": b"a,1\n",
        "b.csv": b"b,2\n",
        "c.csv": b"c",
        "d/e.csv": b"e",
    }
    fs.rm("demo/sales/d", recursive=True)
    fs.mv("demo/sales/c.csv", "demo/sales/moved/c.csv")
    fs.copy("demo/sales/a.csv", "demo/sales/a2.csv")
    assert files_of(repo, "demo/sales") == {
        "a.csv": b"a,1\n",
        "a2.csv": b"a,1\n",
        "b.csv": b"b,2\n",
        "moved/c.csv": b"c",
    }
    assert repo.artifact("demo/sales").version == "v5"
    assert files_of(repo, "demo/sales:v1") == {"a.csv": b"a,1\n", "b.csv": b"b,2\n"}


def test_a_transaction_is_one_version_and_nothing_if_it_raises(repo, fs, tmp_path):
    fs.pipe("demo/t/keep.txt", b"keep")
    with fs.transaction:
        fs.pipe("demo/t/x.txt", b"x")
        with fs.open("demo/t/y.txt", "wb") as f:
            f.write(b"y")
        fs.rm("demo/t/keep.txt")
        assert fs.cat("demo/t/keep.txt") == b"keep"  # nothing visible before the end
        assert repo.artifact("demo/t").version == "v0"
    assert [v.version for v in fs.committed] == ["v1"]
    assert files_of(repo, "demo/t") == {"x.txt": b"x", "y.txt": b"y"}

    with pytest.raises(RuntimeError), fs.transaction:
        fs.pipe("demo/t/z.txt", b"z")
        fs.rm("demo/t/x.txt")
        raise RuntimeError("killed halfway")
    assert repo.artifact("demo/t").version == "v1"
    assert files_of(repo, "demo/t") == {"x.txt": b"x", "y.txt": b"y"}
    assert not list(tmp_path.glob("cairn-fs-*"))


def _folder(tmp_path, files):
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    return tmp_path


SOURCE = {"a.txt": b"a", "b.txt": b"b", "sub/c.txt": b"c", "sub/deep/d.txt": b"d"}


def test_a_recursive_put_or_copy_of_a_folder_is_one_version(repo, fs, tmp_path):
    src = _folder(tmp_path / "src", SOURCE)
    fs.put(str(src), "cairn://demo/pc/dir", recursive=True)
    assert [v.version for v in repo.versions("demo/pc")] == ["v0"]
    assert files_of(repo, "demo/pc") == {f"dir/{k}": v for k, v in SOURCE.items()}
    fs.copy("demo/pc/dir", "demo/pc/copy", recursive=True)
    assert [v.version for v in fs.committed] == ["v1"]
    assert [v.version for v in repo.versions("demo/pc")] == ["v1", "v0"]
    assert files_of(repo, "demo/pc") == {
        f"{top}/{k}": v for top in ("dir", "copy") for k, v in SOURCE.items()
    }


def test_put_mv_and_copy_in_a_transaction_are_one_version_or_nothing(repo, fs, tmp_path):
    src = _folder(tmp_path / "src", SOURCE)
    fs.pipe({"demo/tx/old.txt": b"old", "demo/tx/keep.txt": b"keep"})
    with fs.transaction:
        fs.put(str(src), "demo/tx/in", recursive=True)
        fs.put(str(src / "a.txt"), "demo/tx/one.txt")
        fs.mv("demo/tx/old.txt", "demo/tx/moved.txt")
        fs.copy("demo/tx/keep.txt", "demo/tx/copied.txt")
        assert repo.artifact("demo/tx").version == "v0"
    assert [v.version for v in fs.committed] == ["v1"]
    expected = {
        **{f"in/{k}": v for k, v in SOURCE.items()},
        "one.txt": b"a",
        "moved.txt": b"old",
        "keep.txt": b"keep",
        "copied.txt": b"keep",
    }
    assert files_of(repo, "demo/tx") == expected

    with pytest.raises(RuntimeError), fs.transaction:
        fs.put(str(src), "demo/tx/again", recursive=True)
        fs.mv("demo/tx/moved.txt", "demo/tx/gone.txt")
        fs.copy("demo/tx/in", "demo/tx/in2", recursive=True)
        raise RuntimeError("killed halfway")
    assert [v.version for v in repo.versions("demo/tx")] == ["v1", "v0"]
    assert files_of(repo, "demo/tx") == expected


def test_a_transaction_over_two_collections_commits_each_and_raises_the_failure(repo, fs):
    """One version per collection; when one collection's commit fails (here a
    `Conflict`), the other still commits and the failure is raised (docs/FS.md)."""
    with fs.transaction:
        fs.pipe("demo/one/a", b"a")
        fs.pipe("demo/two/b", b"b")
    assert sorted(v.ref for v in fs.committed) == ["demo/one:v0", "demo/two:v0"]

    other = CairnFileSystem(repository=repo, skip_instance_cache=True)
    with pytest.raises(Conflict, match="demo/two"), fs.transaction:
        fs.pipe("demo/one/a", b"a1")
        fs.pipe("demo/two/b", b"mine")
        other.pipe("demo/two/b", b"theirs")  # commits first: demo/two conflicts
    assert [v.ref for v in fs.committed] == ["demo/one:v1"]
    assert files_of(repo, "demo/one") == {"a": b"a1"}
    assert files_of(repo, "demo/two") == {"b": b"theirs"}


def test_makedirs_of_a_project_or_collection_is_a_no_op(repo, fs):
    fs.makedirs("cairn://newp")
    fs.makedirs("newp/coll")
    fs.mkdir("newp/coll2")
    assert "newp" not in repo.projects()  # made by the first file written, not here
    fs.pipe("demo/md/a", b"a")
    fs.makedirs("demo/md")  # exists: still no error, and no version
    fs.makedirs("demo", exist_ok=False)
    assert [v.version for v in repo.versions("demo/md")] == ["v0"]


def test_removing_a_whole_collection_is_refused(repo, fs):
    fs.pipe({"demo/rmc/a": b"a", "demo/rmc/sub/b": b"b"})
    for recursive in (False, True):
        with pytest.raises(IsADirectoryError, match="cairn://demo/rmc is a collection"):
            fs.rm("cairn://demo/rmc", recursive=recursive)
    assert [v.version for v in repo.versions("demo/rmc")] == ["v0"]
    fs.rm("demo/rmc/*", recursive=True)  # what the message suggests: an empty version
    assert files_of(repo, "demo/rmc") == {}
    assert [v.version for v in repo.versions("demo/rmc")] == ["v1", "v0"]


def test_a_file_whose_writer_raises_is_not_committed(repo, fs):
    fs.pipe("demo/w/a.txt", b"a")
    with pytest.raises(ValueError), fs.open("demo/w/a.txt", "wb") as f:
        f.write(b"half")
        raise ValueError("writer failed")
    assert fs.cat("demo/w/a.txt") == b"a" and len(repo.versions("demo/w")) == 1


def test_writing_to_a_pinned_version_or_alias_is_refused(repo, fs):
    fs.pipe("demo/p/a.txt", b"a")
    repo.artifact("demo/p").aliases = ["production"]
    v = repo.artifact("demo/p")
    v.aliases = ["latest", "production"]
    v.save()
    for ref in ("demo/p:v0", "demo/p:production"):
        with pytest.raises(PermissionError, match="immutable"):
            fs.pipe(f"cairn://{ref}/b.txt", b"b")
        with pytest.raises(PermissionError, match="immutable"):
            fs.rm(f"{ref}/a.txt")
    fs.pipe("demo/p:latest/b.txt", b"b")  # latest means: the next version
    assert files_of(repo, "demo/p") == {"a.txt": b"a", "b.txt": b"b"}
    with pytest.raises(IsADirectoryError):
        fs.pipe("demo/p", b"x")
    with pytest.raises(FileNotFoundError):
        fs.rm("demo/p/nope.txt")


def test_exclusive_modes_and_empty_folders(repo, fs):
    fs.pipe("demo/x/a", b"1")
    with pytest.raises(FileExistsError):
        fs.open("demo/x/a", "xb")
    with pytest.raises(FileExistsError):
        fs.pipe_file("demo/x/a", b"2", mode="create")
    fs.makedirs("demo/x/empty/inner")
    assert fs.isdir("demo/x/empty/inner") and fs.ls("demo/x/empty/inner") == []
    with pytest.raises(FileExistsError):
        fs.makedirs("demo/x/empty/inner")
    fs.touch("demo/x/empty/inner/f")
    assert fs.cat("demo/x/empty/inner/f") == b""
    with pytest.raises(ValueError, match="not supported"):
        fs.open("demo/x/a", "ab")


def test_a_write_that_restores_an_older_state_is_still_the_latest(repo, fs):
    fs.pipe("demo/r/a", b"1")
    fs.pipe("demo/r/b", b"2")
    fs.rm("demo/r/b")  # the content of v0 again: latest must not keep b
    assert not fs.exists("demo/r/b")
    assert repo.artifact("demo/r").version == "v2"


def test_a_write_based_on_an_older_latest_merges_disjoint_paths_or_conflicts(repo, fs):
    fs.pipe("demo/c/a", b"a0")
    other = CairnFileSystem(repository=repo, skip_instance_cache=True)
    with fs.transaction:
        fs.pipe("demo/c/mine", b"m")
        other.pipe("demo/c/theirs", b"t")  # commits first, on the same base
    assert files_of(repo, "demo/c") == {"a": b"a0", "mine": b"m", "theirs": b"t"}

    with pytest.raises(Conflict, match="another writer changed a"), fs.transaction:
        fs.pipe("demo/c/a", b"mine")
        other.pipe("demo/c/a", b"theirs")
    assert fs.cat("demo/c/a") == b"theirs"
    assert len(repo.versions("demo/c")) == 4  # v0, the two merged ones, theirs


def test_writes_are_announced_and_hold_their_parent_only_while_committing(repo, fs):
    seen = []
    repo.on("cairn.version.committed", lambda e: seen.append(e.ref))
    fs.pipe("demo/ev/a.txt", b"a")
    fs.pipe("demo/ev/b.txt", b"b")  # a draft of v0: leased while it commits, then let go
    assert seen == ["demo/ev:v0", "demo/ev:v1"]
    with repo.catalog.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM leases")).scalar_one() == 0


def test_writes_record_lineage_to_the_run(repo):
    with repo.run(project="demo", name="etl") as run:
        fs = CairnFileSystem(repository=repo, run=run, skip_instance_cache=True)
        fs.pipe("demo/l/out.csv", b"x")
    v = repo.artifact("demo/l")
    assert v.logged_by() == run
    by_id = CairnFileSystem(repository=repo, run_id=run.id, skip_instance_cache=True)
    by_id.pipe("demo/l/out2.csv", b"y")
    assert repo.artifact("demo/l").logged_by() == run


def producers(repo, collection):
    """The name of the run that logged each version of `collection`, oldest first."""
    runs = [v.logged_by() for v in reversed(repo.versions(collection))]
    return [r.name if r is not None else None for r in runs]


def test_writes_record_lineage_to_the_current_run(repo, fs):
    """Inside `with repo.run(...)` a write without `run=` is logged by that run, the
    innermost when runs nest; outside any run by none; an explicit run wins."""
    fs.pipe("demo/cur/none.txt", b"0")
    with repo.run(project="demo", name="outer") as outer:
        fs.pipe("demo/cur/a.txt", b"a")
        with repo.run(project="demo", name="inner"):
            fs.pipe("demo/cur/b.txt", b"b")
            with fs.transaction:  # committed at the end of the block, still inside
                fs.pipe("demo/cur/c.txt", b"c")
        fs.pipe("demo/cur/d.txt", b"d")
        with repo.run(project="demo", name="other"):
            CairnFileSystem(repository=repo, run=outer, skip_instance_cache=True).pipe(
                "demo/cur/e.txt", b"e"
            )
            CairnFileSystem(repository=repo, run_id=outer.id, skip_instance_cache=True).pipe(
                "demo/cur/f.txt", b"f"
            )
    fs.pipe("demo/cur/after.txt", b"z")
    assert producers(repo, "demo/cur") == [
        None,
        "outer",
        "inner",
        "inner",
        "outer",
        "outer",
        "outer",
        None,
    ]


def test_a_run_an_orchestrator_hands_out_is_current_without_a_with_block(repo, fs):
    """`current_run()` of the adapters (a `CurrentRuns`) makes its run current in the
    task's context; threads the task starts see it as the one run the process holds."""
    runs = CurrentRuns("task")
    run = runs.add(repo.run(project="demo", name="task", run_id="task-1"), lambda: None)
    fs.pipe("demo/orch/a.txt", b"a")
    worker = threading.Thread(target=fs.pipe, args=("demo/orch/b.txt", b"b"))
    worker.start()
    worker.join()
    others = CurrentRuns("task run")  # another adapter's registry, also holding a run
    second = others.add(repo.run(project="demo", name="other"), lambda: None)
    worker = threading.Thread(target=fs.pipe, args=("demo/orch/c.txt", b"c"))
    worker.start()  # two runs held: which one this thread works for is unknown
    worker.join()
    second.finish()
    runs.finish(run.id, "finished")
    fs.pipe("demo/orch/d.txt", b"d")  # a finished run is no longer current
    assert producers(repo, "demo/orch") == ["task", "task", None, None]


def test_writes_keep_the_collection_type_and_metadata(repo, fs, tmp_path):
    (tmp_path / "w.bin").write_bytes(b"w")
    art = Artifact("m", type="model", metadata={"acc": 0.9}).add_file(tmp_path / "w.bin")
    repo.log_artifact(art, project="demo")
    fs.pipe("demo/m/notes.txt", b"n")
    v = repo.artifact("demo/m")
    assert (v.type, v.metadata, v.version) == ("model", {"acc": 0.9}, "v1")


def test_threads_writing_different_paths_lose_nothing(repo):
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        fs = CairnFileSystem(repository=repo, skip_instance_cache=True)
        try:
            for j in range(3):
                fs.pipe(f"demo/many/w{i}/{j}.txt", f"{i}-{j}".encode())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert files_of(repo, "demo/many") == {
        f"w{i}/{j}.txt": f"{i}-{j}".encode() for i in range(4) for j in range(3)
    }
    assert len(repo.versions("demo/many")) == 12


def _process_writer(catalog: str, home: str, i: int, same: bool) -> str:
    with Repository.open(catalog=catalog, home=home) as repo:
        fs = CairnFileSystem(repository=repo, skip_instance_cache=True)
        path = "demo/procs/same.txt" if same else f"demo/procs/p{i}.txt"
        try:
            with fs.transaction:
                base = fs.cat("demo/procs/seed.txt")
                fs.pipe(path, base + f"-{i}".encode())
        except Conflict:
            return "conflict"
        return "ok"


def test_processes_writing_one_path_conflict_and_disjoint_paths_merge(repo, catalog_url, home):
    fs = CairnFileSystem(repository=repo, skip_instance_cache=True)
    fs.pipe("demo/procs/seed.txt", b"seed")
    with _ctx.Pool(4) as pool:
        results = pool.starmap(
            _process_writer, [(catalog_url, str(home), i, False) for i in range(4)]
        )
    assert results == ["ok"] * 4
    assert sorted(fs.ls("demo/procs", detail=False)) == sorted(
        ["demo/procs/seed.txt", *(f"demo/procs/p{i}.txt" for i in range(4))]
    )
    with _ctx.Pool(4) as pool:
        results = pool.starmap(
            _process_writer, [(catalog_url, str(home), i, True) for i in range(4)]
        )
    # each either committed on the latest it read, or found its path changed meanwhile
    assert "ok" in results
    final = fs.cat("demo/procs/same.txt")
    assert final in {f"seed-{i}".encode() for i, r in enumerate(results) if r == "ok"}
    versions = repo.versions("demo/procs")
    assert len(versions) == 1 + 4 + results.count("ok")


def _killed_writer(catalog: str, home: str, ready: str) -> None:
    import time

    with Repository.open(catalog=catalog, home=home) as repo:
        fs = CairnFileSystem(repository=repo, skip_instance_cache=True)
        with fs.transaction:
            fs.pipe("demo/k/new.txt", b"new")
            fs.rm("demo/k/keep.txt")
            open(ready, "w").close()
            time.sleep(60)  # killed here


def test_a_transaction_killed_halfway_leaves_no_version(repo, fs, catalog_url, home, tmp_path):
    import os
    import signal
    import time

    fs.pipe("demo/k/keep.txt", b"keep")
    ready = tmp_path / "ready"
    child = _ctx.Process(target=_killed_writer, args=(catalog_url, str(home), str(ready)))
    child.start()
    deadline = time.monotonic() + 120
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.exists()
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert [v.version for v in repo.versions("demo/k")] == ["v0"]
    assert fs.cat("demo/k/keep.txt") == b"keep"
    fs.pipe("demo/k/after.txt", b"a")  # the collection takes writes as before
    assert files_of(repo, "demo/k") == {"keep.txt": b"keep", "after.txt": b"a"}


def test_ranges_across_chunk_boundaries_read_back_exactly(small_chunks, tmp_path):
    """Written through cairn:// into ~16 KiB chunks, any range reads back byte for byte
    (from the store, then from the object cache)."""
    import random

    data = random.Random(7).randbytes(300_000)
    fs = CairnFileSystem(repository=small_chunks, skip_instance_cache=True)
    fs.pipe("demo/big/blob.bin", data)
    assert len(small_chunks.artifact("demo/big").entry("blob.bin").chunks) > 5
    rnd = random.Random(1)
    for _ in range(200):
        a = rnd.randrange(len(data))
        b = rnd.randrange(a, min(len(data), a + 70_000) + 1)
        assert fs.cat_file("demo/big/blob.bin", a, b) == data[a:b]
    with fs.open("demo/big:v0/blob.bin") as f:
        f.seek(123_456)
        assert f.read(50_000) == data[123_456:173_456]
    assert fs.cat("demo/big/blob.bin") == data
