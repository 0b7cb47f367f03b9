"""Distributed versions of a DAG run across re-runs (cairn_airflow.distributed), and the
task-instance identity they rest on; driven through the core API, without running DAGs."""

from __future__ import annotations

import pytest

from cairn import Artifact, Conflict
from cairn_airflow.distributed import finish_version, upsert_part
from cairn_airflow.identity import TaskIdentity

RUN_ID = "scheduled__2024-01-01T00:00:00+00:00"


def task(repo, task_id: str, map_index: int = -1):
    """The cairn run a task instance of DAG `etl`, run RUN_ID, gets."""
    ident = TaskIdentity("etl", task_id, RUN_ID, map_index, try_number=1)
    return repo.run(
        project="demo",
        name=ident.run_name,
        group=ident.dag_run_key,
        kind="airflow",
        run_id=ident.cairn_run_id,
        attributes=ident.attributes(),
    )


def write(repo, shard: int, text: str) -> None:
    art = Artifact("parts")
    with art.new_file(f"part-{shard}.txt") as f:
        f.write(text)
    with task(repo, "write", shard) as run:
        upsert_part(run, art)


def finish(repo):
    with task(repo, "finish") as run:
        return finish_version(repo, run, Artifact("parts"))


def test_a_rerun_with_changed_content_commits_a_new_version(repo):
    for shard in range(3):
        write(repo, shard, f"shard {shard}")
    assert finish(repo).version == "v0"
    for shard in range(3):  # the whole DAG run again, one shard now different
        write(repo, shard, "changed" if shard == 2 else f"shard {shard}")
    v1 = finish(repo)

    assert v1.version == "v1"
    assert v1.distributed_id == f"airflow:etl:{RUN_ID}#2"
    assert v1.get_path("part-2.txt").read_text() == "changed"
    assert v1.file_count == 3 and len(v1.contributors()) == 3


def test_a_rerun_of_only_some_writers_is_refused(repo):
    for shard in range(3):
        write(repo, shard, f"shard {shard}")
    finish(repo)
    write(repo, 1, "only shard 1 ran again")

    with pytest.raises(Conflict) as caught:
        finish(repo)
    message = str(caught.value)
    assert "2 of its 3 writers did not write their part again" in message
    assert "etl.write[0], etl.write[2]" in message
    assert [v.version for v in repo.versions("demo/parts")] == ["pending", "v0"]


def test_a_retried_writer_replaces_its_part_in_a_rerun_too(repo):
    for shard in range(2):
        write(repo, shard, f"shard {shard}")
    finish(repo)
    for text in ("first try", "second try"):
        write(repo, 0, text)
    write(repo, 1, "shard 1")
    v = finish(repo)

    assert v.version == "v1" and v.file_count == 2
    assert v.get_path("part-0.txt").read_text() == "second try"


def test_identity_is_stable_across_tries_and_fits_the_catalog():
    first = TaskIdentity("etl", "load", RUN_ID, 3, try_number=1)
    retry = TaskIdentity("etl", "load", RUN_ID, 3, try_number=2)
    other = TaskIdentity("etl", "load", RUN_ID, 4, try_number=1)

    assert first.cairn_run_id == retry.cairn_run_id != other.cairn_run_id
    assert len(first.cairn_run_id) <= 64  # runs.id
    assert first.writer_id == "load[3]"
    assert TaskIdentity("etl", "load", RUN_ID).writer_id == "load"
    assert first.dag_run_key == other.dag_run_key == f"airflow:etl:{RUN_ID}"
    long = TaskIdentity("d" * 250, "t", "r" * 250)
    assert len(long.dag_run_key) <= 200  # versions.distributed_id holds 256, with room for #N
    assert long.dag_run_key != TaskIdentity("d" * 250, "t", "r" * 249 + "x").dag_run_key
