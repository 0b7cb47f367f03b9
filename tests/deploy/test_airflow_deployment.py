"""cairn inside a real Airflow 3 deployment: scheduler, dag-processor, API server and
LocalExecutor workers as separate processes, a PostgreSQL metadata database, and cairn on
a PostgreSQL catalog and an S3 store (moto), configured through the `cairn` connection.

The DAG (dags/cairn_deploy_parts.py) upserts one part per mapped task instance, finishes
the version in a downstream task and downloads it in a third. The tests kill a task
instance's process in the middle of its upload and run two DAG runs at once; each time
the committed versions must be whole, verified byte for byte, with the lineage naming
every task instance.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from airflow_stack import AirflowDeployment, airflow_deployment, ti_key
from backend import CairnBackend
from midupload import MidUpload
from parts import PART_FILES, checked_out, write_parts
from stack import describe_logs, wait_for

from cairn import Repository

DAG = "cairn_deploy_parts"
DAG_FILE = Path(__file__).parent / "dags" / f"{DAG}.py"
PARTS = 32
VICTIM = 13  # the map index whose process is killed mid-upload


@pytest.fixture(scope="module")
def airflow(
    postgres_url: str, cairn_backend: CairnBackend, deploy_dir: Path, deploy_logs: Path
) -> Iterator[AirflowDeployment]:
    connection = {
        "conn_type": "cairn",
        "extra": {
            "catalog": cairn_backend.catalog,
            "store": cairn_backend.store,
            "storage_options": cairn_backend.storage_options(through_proxy=True),
        },
    }
    env = {
        "AIRFLOW_CONN_CAIRN_DEFAULT": json.dumps(connection),
        "CAIRN_HOME": str(deploy_dir / "airflow-cairn-home"),
        **cairn_backend.s3.environ,
    }
    with airflow_deployment(
        deploy_dir / "airflow", deploy_logs / "airflow", postgres_url, dags=[DAG_FILE], env=env
    ) as deployment:
        wait_for(
            f"the dag-processor to parse {DAG}",
            lambda: deployment.api.answers_ok(f"/dags/{DAG}"),
            timeout=90,
            logs=deployment.logs(),
        )
        yield deployment


def test_a_task_killed_mid_upload_is_retried_and_the_version_is_whole(
    airflow: AirflowDeployment, cairn_backend: CairnBackend, repo: Repository, tmp_path: Path
) -> None:
    expected = write_parts(tmp_path / "in", PARTS, seed="killed mid-upload")
    victim = [expected[f"part-{VICTIM:02d}/{name}"] for name in PART_FILES]
    with MidUpload(cairn_backend.proxy, victim) as upload:
        run_id = airflow.trigger(DAG, {"folder": str(tmp_path / "in")})
        wait_for(
            f"upsert[{VICTIM}] to store one object and send the next",
            upload.caught,
            timeout=180,
            logs=airflow.logs(),
        )
        ti = airflow.task(DAG, run_id, "upsert", VICTIM)
        assert (ti["state"], ti["try_number"]) == ("running", 1), ti
        # the REST API's pid is the process sending the part: kill it, and it alone
        assert upload.senders() == {ti["pid"]}, (upload.senders(), ti)
        upload.kill(ti["pid"])
        stored = len(upload.first_puts())
    airflow.wait_for_run(DAG, run_id)

    tries = {ti_key(t): t["try_number"] for t in airflow.tasks(DAG, run_id)}
    assert tries == {
        "list_parts": 1,
        **{f"upsert[{i}]": 2 if i == VICTIM else 1 for i in range(PARTS)},
        "finish": 1,
        "use": 1,
    }, describe_logs(airflow.logs())
    v = repo.artifact(airflow.xcom(DAG, run_id, "finish"))
    assert v.distributed_id == f"airflow:{DAG}:{run_id}"
    assert sorted(e.path for e in v.files()) == sorted(expected)  # 32 parts, none twice
    report = repo.verify(v.ref)
    assert report.ok and report.objects_checked == len(expected), str(report)
    assert checked_out(v.download(tmp_path / "out")) == expected
    # the retry sent only what had not arrived (DESIGN invariant 2)
    assert len(upload.first_puts()) == stored

    # lineage: every mapped task instance contributed its part, the retried one once
    contributors = v.contributors()
    assert sorted(r.attributes["map_index"] for r in contributors) == list(range(PARTS))
    assert {(r.attributes["task_id"], r.attributes["run_id"]) for r in contributors} == {
        ("upsert", run_id)
    }
    assert {r.attributes["map_index"]: r.attributes["try_number"] for r in contributors} == {
        i: 2 if i == VICTIM else 1 for i in range(PARTS)
    }
    assert all(r.state == "finished" and r.kind == "airflow" for r in contributors)
    finisher = v.logged_by()
    assert finisher is not None
    assert (finisher.attributes["task_id"], finisher.attributes["run_id"]) == ("finish", run_id)
    assert [(r.attributes["task_id"], r.attributes["run_id"]) for r in v.used_by()] == [
        ("use", run_id)
    ]
    # the consumer got the same bytes, on the worker that ran it
    assert checked_out(Path(airflow.xcom(DAG, run_id, "use"))) == expected


def test_two_dag_runs_at_once_commit_two_complete_versions(
    airflow: AirflowDeployment, repo: Repository, tmp_path: Path
) -> None:
    parts = 8
    inputs = {name: write_parts(tmp_path / name, parts, seed=name) for name in ("one", "two")}
    runs = {name: airflow.trigger(DAG, {"folder": str(tmp_path / name)}) for name in inputs}
    for run_id in runs.values():
        airflow.wait_for_run(DAG, run_id)

    spans = [airflow.dag_run(DAG, run_id) for run_id in runs.values()]
    starts = [datetime.fromisoformat(r["start_date"]) for r in spans]
    ends = [datetime.fromisoformat(r["end_date"]) for r in spans]
    assert max(starts) < min(ends), "the two DAG runs did not overlap"

    versions = {name: repo.artifact(airflow.xcom(DAG, runs[name], "finish")) for name in runs}
    assert versions["one"].version != versions["two"].version
    for name, v in versions.items():
        assert v.distributed_id == f"airflow:{DAG}:{runs[name]}"
        assert checked_out(v.download(tmp_path / f"out-{name}")) == inputs[name]
        report = repo.verify(v.ref)
        assert report.ok and report.objects_checked == 2 * parts, str(report)
        contributors = v.contributors()
        assert sorted(r.attributes["map_index"] for r in contributors) == list(range(parts))
        assert {r.attributes["run_id"] for r in contributors} == {runs[name]}
        assert v.logged_by().attributes["run_id"] == runs[name]
