"""Mapped upserts committed by finish_artifact: parts, retries, conflicts, process pools."""

import os
from pathlib import Path

import pytest
from prefect import flow, task, unmapped
from prefect.runtime import flow_run
from prefect.task_runners import ProcessPoolTaskRunner
from prefect_api import summaries, table_row, task_runs

import cairn
from cairn import CairnError, Conflict, Finalized
from cairn_prefect import Part, artifact_key, finish_artifact, summary, upsert_artifact


def _shards(folder: Path, n: int, text: str = "row\n") -> list[str]:
    paths = []
    for i in range(n):
        p = folder / f"shard-{i}.csv"
        p.write_text(f"{i},{text}" * 50)
        paths.append(str(p))
    return paths


@flow
def shards_flow(paths: list[str], distributed_id: str | None = None) -> str:
    parts = upsert_artifact.map(
        paths, name="shards", project="demo", distributed_id=unmapped(distributed_id)
    )
    # .result() raises the first failed part's error: the flow fails instead of skipping
    # the commit (a task whose upstream failed is NotReady and returns None)
    return finish_artifact(
        name="shards", project="demo", distributed_id=distributed_id, parts=parts.result()
    )


def test_mapped_parts_commit_as_one_version_with_every_writer_as_contributor(repo, data_dir):
    paths = _shards(data_dir, 3)

    state = shards_flow(paths, return_state=True)

    assert state.result() == "demo/shards:v0"
    v = repo.artifact("demo/shards:v0")
    assert v.distributed_id == str(state.state_details.flow_run_id)  # the default
    assert sorted(e.path for e in v.files()) == ["shard-0.csv", "shard-1.csv", "shard-2.csv"]
    runs = {r.name: r for r in task_runs(state.state_details.flow_run_id)}
    contributors = v.contributors()
    assert sorted(r.name for r in contributors) == sorted(
        n for n in runs if n.startswith("upsert_artifact")
    )
    assert all(r.kind == "prefect" and r.state == "finished" for r in contributors)
    finisher = v.logged_by()
    assert finisher.attributes["task_name"] == "finish_artifact"
    assert finisher.attributes["task_run_id"] == str(runs[finisher.name].id)
    (published,) = summaries(artifact_key("demo", "shards"), state.state_details.flow_run_id)
    row = table_row(published)
    assert row["ref"] == "demo/shards:v0"
    assert row["files"] == 3
    assert row["total_bytes"] == v.size
    assert row["added"] == 3


def test_a_mapped_upsert_that_fails_once_replaces_its_part_on_retry(repo, data_dir, monkeypatch):
    """The first attempt of shard 1 stores its part, then fails; the shard is rewritten and
    the retry (same task run, same writer) replaces the part: no stale copy, no conflict."""
    paths = _shards(data_dir, 3)
    real_upsert = cairn.Run.upsert_artifact
    attempts: list[str] = []

    def flaky_upsert(self, art, **kwargs):
        v = real_upsert(self, art, **kwargs)
        if "shard-1.csv" in art.local_files and not attempts:
            attempts.append(self.id)
            Path(paths[1]).write_text("1,rewritten\n" * 50)
            raise ConnectionError("injected: lost the reply after the part was stored")
        return v

    monkeypatch.setattr(cairn.Run, "upsert_artifact", flaky_upsert)

    @flow
    def flaky_flow() -> str:
        parts = upsert_artifact.with_options(retries=1, retry_delay_seconds=0).map(
            paths, name="shards", project="demo"
        )
        return finish_artifact(name="shards", project="demo", parts=parts.result())

    state = flaky_flow(return_state=True)

    assert state.result() == "demo/shards:v0"
    v = repo.artifact("demo/shards:v0")
    assert [e.path for e in v.files()] == ["shard-0.csv", "shard-1.csv", "shard-2.csv"]
    assert v.get_path("shard-1.csv").read_text() == "1,rewritten\n" * 50
    retried = [r for r in v.contributors() if r.id == attempts[0]]
    assert len(retried) == 1 and retried[0].state == "finished"
    assert len(v.contributors()) == 3
    runs = {str(r.id): r for r in task_runs(state.state_details.flow_run_id)}
    assert runs[retried[0].attributes["task_run_id"]].run_count == 2


def test_a_flow_retry_replaces_the_parts_its_failed_attempt_wrote(repo, data_dir):
    """A flow run that fails after its parts were written (or whose process died) is
    retried with new task runs: they are the same writers, so each replaces the part of
    the earlier attempt, even with new content, instead of adding a second copy."""
    paths = _shards(data_dir, 3)

    @flow(retries=1, retry_delay_seconds=0)
    def retried() -> str:
        if flow_run.run_count > 1:  # the retry reads a shard that changed meanwhile
            Path(paths[1]).write_text("1,second attempt\n" * 50)
        parts = upsert_artifact.map(paths, name="shards", project="demo")
        written = parts.result()
        if flow_run.run_count == 1:
            raise RuntimeError("injected: the first attempt fails after writing its parts")
        return finish_artifact(name="shards", project="demo", parts=written)

    state = retried(return_state=True)

    assert state.result() == "demo/shards:v0"
    v = repo.artifact("demo/shards:v0")
    assert v.get_path("shard-1.csv").read_text() == "1,second attempt\n" * 50
    flow_run_id = str(state.state_details.flow_run_id)
    runs = {str(r.id): r for r in task_runs(flow_run_id)}
    contributors = v.contributors()
    assert len(contributors) == 3  # the retry's task runs, not the failed attempt's too
    assert len([r for r in runs.values() if r.name.startswith("upsert_artifact")]) == 6
    assert {runs[r.attributes["task_run_id"]].flow_run_run_count for r in contributors} == {2}


def test_a_retried_task_wrapping_upsert_fn_replaces_its_part(repo, data_dir):
    """`upsert_artifact.fn` inside a user's task: the part belongs to that task run."""
    paths = _shards(data_dir, 2)
    failed: list[str] = []

    @task(retries=1, retry_delay_seconds=0)
    def write_shard(path: str) -> Part:
        part = upsert_artifact.fn(path, name="shards", project="demo")
        if path == paths[0] and not failed:
            failed.append(path)
            Path(path).write_text("0,second attempt\n")
            raise RuntimeError("injected: failed after upserting")
        return part

    @flow
    def wrapped() -> str:
        parts = write_shard.map(paths)
        return finish_artifact(name="shards", project="demo", parts=parts.result())

    assert wrapped() == "demo/shards:v0"
    v = repo.artifact("demo/shards:v0")
    assert v.get_path("shard-0.csv").read_text() == "0,second attempt\n"
    assert sorted(r.attributes["task_name"] for r in v.contributors()) == [
        "write_shard",
        "write_shard",
    ]


def test_a_retried_finish_returns_the_version_its_first_attempt_committed(
    repo, data_dir, monkeypatch
):
    """The commit went through, then the task failed (publishing the summary): the retry
    must not fail as Finalized but return the committed version."""
    paths = _shards(data_dir, 2)
    real_publish = summary.publish
    calls: list[str] = []

    def flaky_publish(repo, v, **kwargs):
        calls.append(v.ref)
        if len(calls) == 1:
            raise ConnectionError("injected: Prefect API unreachable")
        return real_publish(repo, v, **kwargs)

    monkeypatch.setattr(summary, "publish", flaky_publish)

    @flow
    def retried_finish() -> str:
        parts = upsert_artifact.map(paths, name="shards", project="demo")
        finish = finish_artifact.with_options(retries=1, retry_delay_seconds=0)
        return finish(name="shards", project="demo", parts=parts.result())

    assert retried_finish() == "demo/shards:v0"
    assert calls == ["demo/shards:v0", "demo/shards:v0"]
    assert [v.version for v in repo.versions("demo/shards")] == ["v0"]


def test_an_explicit_distributed_id_spans_flow_runs(repo, data_dir):
    paths = _shards(data_dir, 2)

    @flow
    def writer(path: str) -> None:
        upsert_artifact(path, name="shards", project="demo", distributed_id="nightly-7")

    writer(paths[0])
    writer(paths[1])

    assert shards_flow([], distributed_id="nightly-7") == "demo/shards:v0"
    assert repo.artifact("demo/shards").file_count == 2


def test_finish_with_no_parts_fails_with_the_cores_message(repo):
    @flow
    def nothing() -> str:
        return finish_artifact(name="shards", project="demo")

    with pytest.raises(CairnError, match="no writer upserted"):
        nothing()


def test_two_writers_claiming_one_path_with_different_content_is_a_conflict(repo, data_dir):
    (data_dir / "a").mkdir()
    (data_dir / "b").mkdir()
    (data_dir / "a" / "same.csv").write_text("from a\n")
    (data_dir / "b" / "same.csv").write_text("from b\n")

    with pytest.raises(Conflict, match="already claimed"):
        shards_flow([str(data_dir / "a" / "same.csv"), str(data_dir / "b" / "same.csv")])


def test_an_upsert_after_finish_fails_as_finalized(repo, data_dir):
    paths = _shards(data_dir, 2)
    shards_flow(paths[:1], distributed_id="once")

    with pytest.raises(Finalized, match="already finished"):
        shards_flow(paths[1:], distributed_id="once")


def test_outside_a_flow_an_upsert_needs_a_distributed_id(repo, data_dir):
    (path,) = _shards(data_dir, 1)

    with pytest.raises(CairnError, match="distributed_id"):
        upsert_artifact.fn(path, name="shards", project="demo")


def test_parts_written_from_worker_processes(repo, data_dir):
    paths = _shards(data_dir, 4)

    state = shards_flow.with_options(task_runner=ProcessPoolTaskRunner(max_workers=2))(
        paths, return_state=True
    )

    assert state.result() == "demo/shards:v0"
    v = repo.artifact("demo/shards:v0")
    assert v.file_count == 4
    pids = {r.attributes["pid"] for r in v.contributors()}
    assert os.getpid() not in pids
    assert len(v.contributors()) == 4
