"""The example DAGs in dags_examples/, run with dag.test() against an empty repository."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from dagruns import asset_events, load_dag, rerun, states, xcom

ROOT = Path(__file__).resolve().parents[2]
SHARDED = "airflow_sharded_dataset.py"
DAILY = "airflow_daily_incremental.py"
SWEEP = "airflow_model_sweep.py"
DAY = datetime(2024, 3, 1, tzinfo=timezone.utc)


def test_example_dags_parse_without_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    assert {
        "cairn_sharded_producer",
        "cairn_sharded_consumer",
        "cairn_daily_incremental",
        "cairn_model_sweep",
    } <= set(bag.dag_ids)


def test_sharded_producer_commits_one_version_from_mapped_parts(repo):
    dr = load_dag(SHARDED, "cairn_sharded_producer").test(logical_date=DAY)

    assert dr.state == "success", states(dr)
    v = repo.artifact("demo/events:latest")
    assert (v.version, v.state, sorted(v.aliases)) == ("v0", "COMMITTED", ["daily", "latest"])
    sizes = {e.path: e.size for e in v.files()}
    assert sorted(sizes) == [f"shards/part-00{i}.csv" for i in range(3)]
    data = Path(os.environ["CAIRN_EXAMPLE_DATA"], "events", "2024-03-01")
    assert sizes == {f"shards/{p.name}": p.stat().st_size for p in data.iterdir()}
    assert v.size == sum(sizes.values())
    assert v.metadata == {"date": "2024-03-01", "shards": 3}
    assert v.description == "events of 2024-03-01"
    assert xcom(dr, "commit") == "demo/events:v0"

    # lineage: the finishing task logged it, each mapped upsert contributed a part
    finisher = v.logged_by()
    assert finisher.kind == "airflow" and finisher.job_type == "finish_artifact"
    assert finisher.attributes["dag_id"] == "cairn_sharded_producer"
    assert finisher.attributes["run_id"] == dr.run_id
    assert finisher.state == "finished"
    writers = sorted(r.attributes["map_index"] for r in v.contributors())
    assert writers == [0, 1, 2]
    assert {r.name for r in v.contributors()} == {
        f"cairn_sharded_producer.upsert_shard[{i}]" for i in range(3)
    }

    # the asset event names the version and its digest; the consumer is queued on it
    [event] = asset_events("cairn://demo/events", dr)
    assert event.source_task_id == "commit"
    assert event.extra["ref"] == "demo/events:v0"
    assert (event.extra["version"], event.extra["digest"]) == ("v0", v.digest)
    assert event.extra["size"] == v.size and event.extra["files"] == 3
    assert "cairn_sharded_consumer" in queued_dag_runs()


def test_sharded_consumer_reads_and_records_the_version(repo):
    load_dag(SHARDED, "cairn_sharded_producer").test(logical_date=DAY)
    dr = load_dag(SHARDED, "cairn_sharded_consumer").test(logical_date=DAY)

    assert dr.state == "success", states(dr)
    assert xcom(dr, "count_rows") == 100 + 200 + 300
    folder = Path(xcom(dr, "fetch"))
    assert sorted(p.name for p in (folder / "shards").iterdir()) == [
        f"part-00{i}.csv" for i in range(3)
    ]
    assert xcom(dr, "fetch", key="ref") == "demo/events:v0"
    users = repo.artifact("demo/events:v0").used_by()
    assert sorted(r.attributes["task_id"] for r in users) == ["count_rows", "fetch"]
    assert {r.attributes["dag_id"] for r in users} == {"cairn_sharded_consumer"}


def test_rerunning_a_dag_run_does_not_duplicate_parts(repo, monkeypatch):
    producer = load_dag(SHARDED, "cairn_sharded_producer")
    first = producer.test(logical_date=DAY)
    again = rerun(producer, first, monkeypatch)

    assert again.run_id == first.run_id
    assert again.state == "success", states(again)
    assert [v.version for v in repo.versions("demo/events")] == ["v0"]
    v = repo.artifact("demo/events:latest")
    assert v.file_count == 3 and len(v.contributors()) == 3
    assert xcom(again, "commit") == "demo/events:v0"
    # the re-run assembled the next generation of the DAG run's version, whose content,
    # identical to v0, gave v0 back
    key = f"airflow:cairn_sharded_producer:{first.run_id}"
    assert {
        (x.distributed_id, x.state) for x in repo.versions("demo/events", include_deleted=True)
    } == {
        (key, "COMMITTED"),
        (f"{key}#2", "DELETED"),
    }
    events = asset_events("cairn://demo/events", again)  # one per run of the commit task
    assert [e.extra["ref"] for e in events] == ["demo/events:v0", "demo/events:v0"]


def test_rerunning_only_the_finish_task_returns_its_version(repo, monkeypatch):
    producer = load_dag(SHARDED, "cairn_sharded_producer")
    first = producer.test(logical_date=DAY)
    again = rerun(producer, first, monkeypatch, mark_success_pattern="upsert_shard")

    assert again.state == "success", states(again)
    assert xcom(again, "commit") == "demo/events:v0"
    assert [v.version for v in repo.versions("demo/events")] == ["v0"]


def test_daily_incremental_adds_days_and_drops_retracted_files(repo):
    dag = load_dag(DAILY, "cairn_daily_incremental")
    runs = [dag.test(logical_date=datetime(2024, 1, d, tzinfo=timezone.utc)) for d in (1, 2, 3)]

    assert [dr.state for dr in runs] == ["success"] * 3, [states(dr) for dr in runs]
    assert [v.version for v in repo.versions("demo/clicks")] == ["v2", "v1", "v0"]
    paths = {v.version: sorted(e.path for e in v.files()) for v in repo.versions("demo/clicks")}
    day = "days/2024-01-0{}/clicks-{}.csv"
    assert paths["v0"] == [day.format(1, 0), day.format(1, 1)]
    assert paths["v1"] == sorted(paths["v0"] + [day.format(2, 0), day.format(2, 1)])
    assert paths["v2"] == sorted(
        [day.format(1, 0), day.format(2, 0), day.format(2, 1), day.format(3, 0), day.format(3, 1)]
    )
    diff = repo.diff("demo/clicks:v1", "demo/clicks:v2")
    assert (diff.removed, diff.modified) == ((day.format(1, 1),), ())
    assert xcom(runs[2], "report") == {
        "files": 5,
        "bytes": repo.artifact("demo/clicks:v2").size,
        "added": 2,
        "removed": 1,
    }

    # each day's logging run used the previous version: the draft's parent
    v2 = repo.artifact("demo/clicks:v2")
    assert [u.version for u in v2.logged_by().used_artifacts()] == ["v1"]
    assert v2.metadata == {"last_day": "2024-01-03"}
    assert [e.extra["version"] for e in asset_events("cairn://demo/clicks")[-3:]] == [
        "v0",
        "v1",
        "v2",
    ]


def test_daily_rerun_of_a_day_gives_back_its_version(repo):
    dag = load_dag(DAILY, "cairn_daily_incremental")
    for d in (1, 2, 3, 3):
        dr = dag.test(logical_date=datetime(2024, 1, d, tzinfo=timezone.utc))
        assert dr.state == "success", states(dr)
    assert [v.version for v in repo.versions("demo/clicks")] == ["v2", "v1", "v0"]
    assert xcom(dr, "log_day") == "demo/clicks:v2"


def test_example_runs_on_its_own(tmp_path):
    """The README demo: `python dags_examples/airflow_sharded_dataset.py` on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CAIRN_"))}
    env["CAIRN_HOME"] = str(tmp_path / "home")
    env["CAIRN_EXAMPLE_DATA"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, str(ROOT / "dags_examples" / SHARDED)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert "demo/events:v0: 600 rows in 3 shards" in done.stdout
    assert (tmp_path / "home" / "airflow").is_dir()  # Airflow's home defaults beside cairn's


def queued_dag_runs() -> set[str]:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return {q.target_dag_id for q in session.query(AssetDagRunQueue)}


def test_model_sweep_trains_one_run_per_map_index_and_promotes_the_best(repo):
    dag = load_dag(SWEEP, "cairn_model_sweep")
    dr = dag.test(logical_date=DAY)

    assert dr.state == "success", states(dr)
    group = f"airflow:cairn_model_sweep:{dr.run_id}"
    runs = repo.search_runs("job_type = 'train'", order_by="-summary.val_acc")
    assert [(r.config["lr"], r.attributes["map_index"]) for r in runs] == [
        (3.0, 1),
        (1.0, 2),
        (0.1, 0),
    ]
    assert {(r.group, r.state, r.project) for r in runs} == {(group, "finished", "demo")}
    accs = [r.summary["val_acc"] for r in runs]
    assert accs == sorted(accs, reverse=True) and len(set(accs)) == 3
    best = repo.artifact("demo/sweep-model:production")
    assert best.logged_by() == runs[0] and best.ref == runs[0].summary["model"]
    assert best.metadata == {"lr": 3.0, "val_acc": accs[0]}
    assert xcom(dr, "promote") == best.ref
    assert [r.attributes["task_id"] for r in best.used_by()] == ["promote"]
    # the model versions are searchable by what they were logged with
    assert [
        v.ref for v in repo.search_versions("metadata.val_acc > :a", params={"a": accs[1]})
    ] == [best.ref]

    # another DAG run trains the same models: no new versions, the same one promoted
    again = dag.test(logical_date=datetime(2024, 3, 2, tzinfo=timezone.utc))
    assert again.state == "success", states(again)
    assert repo.count_versions("name = 'sweep-model'") == 3
    assert repo.count_runs("job_type = 'train'") == 6
    assert xcom(again, "promote") == best.ref
