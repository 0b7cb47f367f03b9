"""DAGs whose OpenLineage events tests/airflow/test_openlineage.py reads back.

Each is enabled for OpenLineage one by one (`enable_lineage`: the test session sets
`[openlineage] selective_enable`), with the file transport writing every event to a file.

- `cairn_ol_log_use`: a Parquet file logged (LogArtifactOperator), then read by alias
  (UseArtifactOperator);
- `cairn_ol_references`: a version of S3 references (logged by the test) read, and a new
  version made from it with one more file (incremental);
- `cairn_ol_distributed`: three mapped upserts and the commit;
- `cairn_ol_sensor`, `cairn_ol_sensor_deferred`: ArtifactAliasSensor finding
  demo/model:production past v0, poking and deferred to the triggerer;
- `cairn_ol_taskflow`: TaskFlow tasks using `task_run` and `current_run`, one of them
  logging to an alias (`asset_alias`);
- `cairn_ol_alias_consumer`: scheduled on that alias;
- `cairn_ol_failure`: an incremental log whose new file is missing: it fails after reading
  the version it starts from.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.openlineage.utils.selective_enable import enable_lineage
from airflow.sdk import DAG, task

from cairn import Artifact
from cairn_airflow import (
    ArtifactAliasSensor,
    CairnHook,
    FinishArtifactOperator,
    LogArtifactOperator,
    UpsertArtifactOperator,
    UseArtifactOperator,
    asset_alias,
    current_run,
    record_asset_event,
    task_run,
)

START = datetime(2024, 1, 1)
EXPORTS = asset_alias("exports")


def data(*parts: str) -> str:
    path = os.path.join(os.environ["CAIRN_TEST_DATA"], *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def fresh_collector(context) -> None:
    """dag.test() runs every task in this one process, where Airflow's hook-level lineage
    collector is a process-wide singleton; a worker runs each task in its own process.
    Start each task with an empty collector, as a worker would."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    get_hook_lineage_collector.cache_clear()


with DAG("cairn_ol_log_use", schedule=None, start_date=START) as log_use:

    @task
    def write_table() -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = data("table", "rows.parquet")
        table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "score": [0.5, 0.7, 0.9]})
        pq.write_table(table, path)
        return path

    LogArtifactOperator(
        task_id="log",
        project="demo",
        name="table",
        paths=write_table(),
        aliases=["candidate"],
        description="three rows",
    ) >> UseArtifactOperator(task_id="use", project="demo", ref="table:candidate")
enable_lineage(log_use)


with DAG("cairn_ol_references", schedule=None, start_date=START) as references:

    @task
    def write_notes() -> str:
        path = data("notes", "notes.txt")
        with open(path, "w") as f:
            f.write("added by the DAG\n")
        return path

    UseArtifactOperator(task_id="use", ref="demo/raw:latest") >> LogArtifactOperator(
        task_id="extend", project="demo", name="raw", paths=write_notes(), incremental=True
    )
enable_lineage(references)


with DAG("cairn_ol_distributed", schedule=None, start_date=START) as distributed:

    @task
    def shard(i: int) -> str:
        path = data("parts", f"part-{i}.csv")
        with open(path, "w") as f:
            f.write(f"id,value\n{i},{i * 10}\n")
        return path

    parts = UpsertArtifactOperator.partial(task_id="upsert", project="demo", name="parts").expand(
        path=shard.expand(i=[0, 1, 2])
    )
    parts >> FinishArtifactOperator(task_id="commit", project="demo", name="parts")
enable_lineage(distributed)


for dag_id, deferrable in (("cairn_ol_sensor", False), ("cairn_ol_sensor_deferred", True)):
    with DAG(dag_id, schedule=None, start_date=START) as sensor:
        ArtifactAliasSensor(
            task_id="wait",
            ref="demo/model:production",
            newer_than="v0",
            poke_interval=0.2,
            timeout=60,
            deferrable=deferrable,
        )
    globals()[dag_id] = enable_lineage(sensor)


with DAG(
    "cairn_ol_taskflow",
    schedule=None,
    start_date=START,
    default_args={"on_execute_callback": fresh_collector},
) as taskflow:

    @task
    def features() -> str:
        with task_run(CairnHook().get_repository(), project="demo") as run:
            raw = run.use_artifact("raw:latest")
            art = Artifact("features")
            with art.new_file("features.csv") as f:
                f.write(f"source,files\n{raw.ref},{raw.file_count}\n")
            return run.log_artifact(art).ref

    @task(outlets=[EXPORTS])
    def export(features_ref: str) -> str:
        report = data("exports", "report.txt")
        with open(report, "w") as f:
            f.write("a report kept where it is: cairn only references it\n")
        run = current_run(project="demo")
        features = run.use_artifact(features_ref)
        art = Artifact("export", type="report")
        art.add_reference(report, name="report.txt")
        v = run.log_artifact(art)
        record_asset_event(v)
        return f"{features.ref} -> {v.ref}"

    export(features())
enable_lineage(taskflow)


with DAG("cairn_ol_alias_consumer", schedule=[EXPORTS], start_date=START) as consumer:

    @task
    def noop() -> None:
        pass

    noop()


with DAG("cairn_ol_failure", schedule=None, start_date=START) as failure:
    LogArtifactOperator(
        task_id="extend",
        project="demo",
        name="table",
        paths="/nonexistent/cairn-test/more.parquet",
        incremental=True,
    )
enable_lineage(failure)
