"""The maintenance example DAG (dags_examples/airflow_maintenance.py) under dag.test():
retain then gc, on a repository with a policy, a protected version and a dry run first."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from dagruns import load_dag, states, xcom

from cairn import Artifact

MAINTENANCE = "airflow_maintenance.py"


def _log(repo, content: str, aliases=()) -> None:
    art = Artifact("clicks", "dataset")
    with art.new_file("a.csv") as f:
        f.write(content)
    repo.log_artifact(art, project="demo", aliases=list(aliases))


def test_maintenance_dag_applies_retention_then_frees_the_bytes(repo):
    for i in range(5):
        _log(repo, f"day {i}\n" * 100, aliases=["production"] if i == 0 else [])
    repo.set_retention("demo", keep_last=2)
    dag = load_dag(MAINTENANCE, "cairn_maintenance")

    day = datetime(2024, 5, 1, tzinfo=timezone.utc)
    dry = dag.test(logical_date=day, run_conf={"dry_run": True})
    assert dry.state == "success", states(dry)
    assert xcom(dry, "retain")["deleted"] == ["demo/clicks:v1", "demo/clicks:v2"]
    assert xcom(dry, "gc")["bytes_freed"] == 0  # nothing deleted yet: nothing to free
    assert [v.version for v in repo.versions("demo/clicks")] == ["v4", "v3", "v2", "v1", "v0"]

    dr = dag.test(logical_date=day.replace(day=2), run_conf={"dry_run": False, "grace": "0"})
    assert dr.state == "success", states(dr)
    retained, collected = xcom(dr, "retain"), xcom(dr, "gc")
    assert retained["deleted"] == ["demo/clicks:v1", "demo/clicks:v2"]
    assert retained["dry_run"] is False and retained["gc_bytes"] > 0
    assert collected["bytes_freed"] == retained["gc_bytes"]
    assert collected["versions_deleted"] == 2
    assert [v.version for v in repo.versions("demo/clicks")] == ["v4", "v3", "v0"]
    assert repo.artifact("demo/clicks:production").get_path("a.csv").read_text().startswith("day 0")
    assert repo.verify().ok


def test_maintenance_dag_is_scheduled_daily_and_dry_run_is_a_param():
    dag = load_dag(MAINTENANCE, "cairn_maintenance")
    assert [t.task_id for t in dag.tasks] == ["retain", "gc"]
    assert dag.get_task("gc").upstream_task_ids == {"retain"}
    assert dag.schedule == "@daily" and dag.max_active_runs == 1
    assert Path(dag.fileloc).name == MAINTENANCE
