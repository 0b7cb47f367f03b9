"""log_artifact / use_artifact in flows: versions, lineage, the published summary, errors."""

from pathlib import Path

import pytest
from prefect import flow
from prefect_api import summaries, table_row, task_runs

from cairn import InvalidName, NotFound, Repository
from cairn_prefect import artifact_key, log_artifact, use_artifact


@flow
def log_flow(path: str, name: str = "raw", prefix: str | None = None) -> str:
    return log_artifact(path, name=name, project="demo", prefix=prefix)


@flow
def use_flow(ref: str, root: str) -> str:
    return use_artifact(ref, root=root)


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_log_artifact_commits_a_version_with_the_task_run_as_its_logger(repo, data_dir):
    _write(data_dir, {"a.txt": "alpha\n" * 100, "sub/b.txt": "beta\n"})

    state = log_flow(str(data_dir), prefix="data", return_state=True)

    ref = state.result()
    assert ref == "demo/raw:v0"
    v = repo.artifact(ref)
    assert sorted(e.path for e in v.files()) == ["data/a.txt", "data/sub/b.txt"]
    (task_run,) = task_runs(state.state_details.flow_run_id)
    run = v.logged_by()
    assert run is not None
    assert run.kind == "prefect"
    assert run.state == "finished"
    assert run.name == task_run.name
    assert run.group == str(state.state_details.flow_run_id)
    assert run.attributes["task_run_id"] == str(task_run.id)
    assert run.attributes["flow_run_id"] == str(state.state_details.flow_run_id)
    assert run.attributes["flow_name"] == "log-flow"
    assert run.attributes["task_name"] == "log_artifact"


def test_each_commit_publishes_a_table_artifact_with_the_diff(repo, data_dir):
    _write(data_dir, {"a.txt": "alpha\n" * 1000, "b.txt": "beta\n" * 1000})
    first_state = log_flow(str(data_dir), return_state=True)
    _write(data_dir, {"b.txt": "beta, fixed\n" * 1000, "c.txt": "gamma\n"})
    (data_dir / "a.txt").unlink()

    state = log_flow(str(data_dir), return_state=True)

    v1 = repo.artifact(state.result())
    flow_runs = (first_state.state_details.flow_run_id, state.state_details.flow_run_id)
    published = summaries(artifact_key("demo", "raw"), *flow_runs)
    assert len(published) == 2
    latest = published[0]
    row = table_row(latest)
    assert row["ref"] == "demo/raw:v1"
    assert row["created"] is True
    assert row["files"] == 2
    assert row["total_bytes"] == v1.size
    # only the changed and new files were stored
    assert row["new_bytes"] == len("beta, fixed\n" * 1000) + len("gamma\n")
    assert row["previous"] == "demo/raw:v0"
    assert (row["added"], row["removed"], row["modified"]) == (1, 1, 1)
    assert row["digest"] == v1.digest
    assert "cairn diff demo/raw:v0 demo/raw:v1" in latest.description
    assert "`c.txt`" in latest.description
    # the artifact belongs to the task run that committed the version
    assert latest.flow_run_id == state.state_details.flow_run_id
    assert str(latest.task_run_id) == v1.logged_by().attributes["task_run_id"]
    first = table_row(published[1])
    assert first["ref"] == "demo/raw:v0"
    assert first["previous"] is None
    assert first["added"] == 2


def test_logging_identical_content_returns_the_existing_version(repo, data_dir):
    _write(data_dir, {"a.txt": "alpha\n"})
    assert log_flow(str(data_dir)) == "demo/raw:v0"

    state = log_flow(str(data_dir), return_state=True)

    assert state.result() == "demo/raw:v0"
    assert [v.version for v in repo.versions("demo/raw")] == ["v0"]
    (published,) = summaries(artifact_key("demo", "raw"), state.state_details.flow_run_id)
    row = table_row(published)
    assert row["created"] is False
    assert row["new_bytes"] == 0


def test_use_artifact_downloads_and_records_the_use(repo, data_dir, tmp_path):
    _write(data_dir, {"a.txt": "alpha\n"})
    log_flow(str(data_dir))

    state = use_flow("demo/raw", str(tmp_path / "out"), return_state=True)

    local = Path(state.result())
    assert local == tmp_path / "out"
    assert (local / "a.txt").read_text() == "alpha\n"
    (user,) = repo.artifact("demo/raw:v0").used_by()
    assert user.kind == "prefect"
    assert user.attributes["task_name"] == "use_artifact"
    assert user.attributes["flow_run_id"] == str(state.state_details.flow_run_id)
    assert [v.ref for v in user.used_artifacts()] == ["demo/raw:v0"]


def test_use_artifact_returns_one_file_or_the_exact_ref(repo, data_dir):
    _write(data_dir, {"a.txt": "alpha\n", "b.txt": "beta\n"})
    log_flow(str(data_dir))

    @flow
    def pick() -> tuple[str, str]:
        one = use_artifact("demo/raw:latest", path="b.txt")
        exact = use_artifact("demo/raw:latest", download=False)
        return one, exact

    one, exact = pick()

    assert Path(one).read_text() == "beta\n"
    assert exact == "demo/raw:v0"


def test_a_saved_block_name_selects_the_repository(tmp_path, data_dir, repo):
    from cairn_prefect import CairnRepository

    other = tmp_path / "other"
    CairnRepository(
        catalog=f"sqlite:///{other}/catalog.db", store=str(other / "store"), project="team"
    ).save("tasks-other-repo", overwrite=True)
    _write(data_dir, {"a.txt": "alpha\n"})

    @flow
    def to_block() -> str:
        return log_artifact(str(data_dir), name="raw", repository="tasks-other-repo")

    assert to_block() == "team/raw:v0"
    with Repository.open(catalog=f"sqlite:///{other}/catalog.db", store=str(other / "store")) as r:
        assert r.artifact("team/raw").file_count == 1
    assert repo.collections() == []  # nothing went to the default repository


def test_a_bad_ref_fails_the_flow_with_the_cores_message(repo, tmp_path):
    with pytest.raises(NotFound, match="demo/nothing"):
        use_flow("demo/nothing:v3", str(tmp_path))
    with pytest.raises(InvalidName, match="invalid"):
        use_flow("demo/../x", str(tmp_path))


def test_a_missing_path_fails_with_the_cores_message(repo, tmp_path):
    with pytest.raises(NotFound, match="no such file"):
        log_flow(str(tmp_path / "absent.csv"))
    # the failed attempt is recorded as a failed run and logged nothing
    assert repo.collections() == []


def test_incremental_log_adds_removes_and_skips_absent_removals(repo, data_dir, tmp_path):
    _write(data_dir, {"a.txt": "alpha\n", "b.txt": "beta\n"})
    log_flow(str(data_dir))
    day2 = _write(tmp_path / "day2", {"c.txt": "gamma\n"})

    @flow
    def incremental() -> str:
        return log_artifact(
            str(day2),
            name="raw",
            project="demo",
            incremental=True,
            remove=["a.txt", "never-there.txt"],
        )

    state = incremental(return_state=True)

    assert state.result() == "demo/raw:v1"
    assert [e.path for e in repo.artifact("demo/raw:v1").files()] == ["b.txt", "c.txt"]
    (published,) = summaries(artifact_key("demo", "raw"), state.state_details.flow_run_id)
    row = table_row(published)
    assert (row["added"], row["removed"], row["modified"]) == (1, 1, 0)
    assert row["new_bytes"] == len("gamma\n")  # b.txt came from v0 untouched


def test_a_cairn_error_is_not_retried(repo, tmp_path):
    @flow
    def bad_ref() -> str:
        return use_artifact.with_options(retries=3, retry_delay_seconds=0)(
            "demo/nothing:v0", root=str(tmp_path)
        )

    state = bad_ref(return_state=True)

    assert state.is_failed()
    (task_run,) = task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 1
    assert "NotFound" in task_run.state.message
