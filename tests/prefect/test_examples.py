"""The example flows of dags_examples/, run for real: in-process and as plain scripts."""

import os
import subprocess
import sys
from pathlib import Path

import prefect_daily_incremental as daily
import prefect_model_sweep as sweep
import prefect_sharded_dataset as sharded
import pytest
from prefect_api import summaries, table_row, task_runs

from cairn import Repository
from cairn_prefect import artifact_key

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"


def test_sharded_dataset_commits_the_shards_then_the_consumer_uses_them(repo, tmp_path):
    state = sharded.sharded_dataset(
        shards=3, rows=20, workdir=str(tmp_path), aliases=["candidate"], return_state=True
    )

    assert state.result() == {"ref": "demo/shards:v0", "rows": 60}
    flow_run_id = state.state_details.flow_run_id
    v = repo.artifact("demo/shards:candidate")
    assert v.version == "v0"
    assert [e.path for e in v.files()] == [f"parts/shard-000{i}.csv" for i in range(3)]
    assert v.metadata == {"shards": 3, "rows_per_shard": 20, "seed": 0}
    # lineage: three writers, one finisher, one consumer, all task runs of this flow run
    runs = {str(r.id): r.name for r in task_runs(flow_run_id)}
    lineage = [*v.contributors(), v.logged_by(), *v.used_by()]
    assert len(lineage) == 5
    assert {r.attributes["task_run_id"] for r in lineage} <= set(runs)
    assert [r.attributes["task_name"] for r in v.used_by()] == ["use_artifact"]
    (published,) = summaries(artifact_key("demo", "shards"), flow_run_id)
    assert table_row(published)["files"] == 3


def test_sharded_dataset_rerun_identical_then_changed(repo, tmp_path):
    sharded.sharded_dataset(shards=2, rows=10, workdir=str(tmp_path / "1"))

    same = sharded.sharded_dataset(shards=2, rows=10, workdir=str(tmp_path / "2"))
    changed = sharded.sharded_dataset(shards=2, rows=10, seed=5, workdir=str(tmp_path / "3"))

    assert same["ref"] == "demo/shards:v0"  # identical content: no new version
    assert changed["ref"] == "demo/shards:v1"
    diff = repo.diff("demo/shards:v0", "demo/shards:v1")
    assert (len(diff.added), len(diff.removed), len(diff.modified)) == (0, 0, 2)


def test_daily_incremental_adds_days_drops_bad_files_and_retractions(repo, tmp_path):
    # 2024-01-03 is a day whose part-2 arrives truncated
    first = daily.daily_incremental(day="2024-01-02", workdir=str(tmp_path))
    state = daily.daily_incremental(
        day="2024-01-03",
        drop=["sessions/2024-01-02/part-1.jsonl"],
        workdir=str(tmp_path),
        return_state=True,
    )

    assert first == "demo/sessions:v0"
    assert state.result() == "demo/sessions:v1"
    v1 = repo.artifact("demo/sessions:v1")
    assert [e.path for e in v1.files()] == [
        "sessions/2024-01-02/part-0.jsonl",
        "sessions/2024-01-02/part-2.jsonl",
        "sessions/2024-01-03/part-0.jsonl",
        "sessions/2024-01-03/part-1.jsonl",
    ]
    assert v1.metadata == {"last_day": "2024-01-03"}
    # the draft started from v0, which the run used
    assert [r.attributes["task_name"] for r in repo.artifact("demo/sessions:v0").used_by()] == [
        "log_artifact"
    ]
    (published,) = summaries(artifact_key("demo", "sessions"), state.state_details.flow_run_id)
    row = table_row(published)
    assert row["previous"] == "demo/sessions:v0"
    assert (row["added"], row["removed"], row["modified"]) == (2, 1, 0)
    # only the day's two good files were stored: the rest came from v0 untouched
    today = tmp_path / "2024-01-03"
    assert row["new_bytes"] == sum((today / f"part-{i}.jsonl").stat().st_size for i in (0, 1))


def test_model_sweep_trains_one_run_per_mapped_task_and_promotes_the_best(repo, tmp_path):
    state = sweep.model_sweep(workdir=str(tmp_path), return_state=True)

    flow_run = str(state.state_details.flow_run_id)
    runs = repo.search_runs("job_type = 'train'", order_by="-summary.val_acc")
    assert [r.config["lr"] for r in runs] == [3.0, 1.0, 0.1]
    assert {(r.group, r.state, r.project, r.kind) for r in runs} == {
        (flow_run, "finished", "demo", "prefect")
    }
    assert len({r.attributes["task_run_id"] for r in runs}) == 3
    accs = [r.summary["val_acc"] for r in runs]
    assert accs == sorted(accs, reverse=True) and len(set(accs)) == 3
    best = repo.artifact("demo/sweep-model:production")
    assert state.result() == best.ref == runs[0].summary["model"]
    assert best.logged_by() == runs[0] and best.metadata == {"lr": 3.0, "val_acc": accs[0]}
    assert [r.attributes["task_name"] for r in best.used_by()] == ["promote"]

    # a second sweep trains identical models: no new versions, the same one promoted
    assert sweep.model_sweep(workdir=str(tmp_path / "again")) == best.ref
    assert repo.count_versions("name = 'sweep-model'") == 3
    assert repo.count_runs("job_type = 'train'") == 6


def _script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def script_env(prefect_server: str, cairn_home: Path) -> dict[str, str]:
    """Environment of an example run as a script, against the session's Prefect server."""
    return {**os.environ, "PREFECT_API_URL": prefect_server, "CAIRN_HOME": str(cairn_home)}


def test_the_examples_run_as_scripts(script_env, cairn_home):
    done = _script("prefect_sharded_dataset.py", "--shards", "2", "--rows", "5", env=script_env)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _script("prefect_daily_incremental.py", "--day", "2024-01-02", env=script_env)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _script("prefect_model_sweep.py", "--lr", "0.5", "--lr", "2", env=script_env)
    assert done.returncode == 0, done.stdout + done.stderr

    with Repository.open() as repo:
        assert repo.artifact("demo/shards").file_count == 2
        assert repo.artifact("demo/sessions").file_count == 3
        best = repo.search_runs("job_type = 'train'", order_by="-summary.val_acc", limit=1)
        assert best[0].config["lr"] == 2.0
        assert repo.artifact("demo/sweep-model:production").metadata["lr"] == 2.0


def test_a_failing_example_exits_non_zero_with_the_reason(script_env):
    args = ["--day", "2024-01-02", "--repository", "no-such-block"]
    done = _script("prefect_daily_incremental.py", *args, env=script_env)
    assert done.returncode == 1
    assert "no-such-block" in done.stdout + done.stderr


def test_a_plain_script_runs_on_a_temporary_server_with_worker_processes(tmp_path, cairn_home):
    """No PREFECT_API_URL and an empty PREFECT_HOME, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), CAIRN_HOME=str(cairn_home))
    # Prefect gives a temporary server 20 s to start: not enough on a loaded machine
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"

    done = _script("prefect_sharded_dataset.py", "--processes", "2", "--shards", "2", env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "demo/shards:v0: 2000 rows in 2 shards" in output
    assert output.count("Starting temporary server") == 1  # the workers share it
