"""A sharded dataset: mapped tasks write and upsert one shard each, one task commits it.

    python dags_examples/airflow_sharded_dataset.py

runs both DAGs below with `dag.test()` on cairn's embedded default (~/.cairn, or
$CAIRN_HOME) and exits non-zero if a task failed.

`cairn_sharded_producer`: `write_shard` is mapped over the day's shards; each file goes to
`UpsertArtifactOperator`, mapped the same way, as that task instance's part of the DAG
run's pending version of `demo/events` (a retried shard replaces its own part); `commit`
makes it the next version (v0, v1, ...) and emits an asset event on `cairn://demo/events`
whose extra names the version (`ref`, `version`, `digest`).

`cairn_sharded_consumer` is scheduled on that asset: it reads exactly the version the
event names (the newest one when started by hand) and records the use, so
`cairn lineage demo/events` shows who made and who read each version.

The shard files must be readable where the upsert runs: on a multi-machine deployment,
write them to shared storage (set CAIRN_EXAMPLE_DATA), or write and upsert in one task.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from cairn_airflow import (
    CairnHook,
    FinishArtifactOperator,
    UpsertArtifactOperator,
    UseArtifactOperator,
    asset_for,
    task_run,
)

PROJECT, NAME = "demo", "events"
SHARDS = 3
EVENTS = asset_for(PROJECT, NAME)  # the Asset cairn://demo/events
DATA = os.environ.get("CAIRN_EXAMPLE_DATA") or os.path.join(tempfile.gettempdir(), "cairn-example")

with DAG(
    dag_id="cairn_sharded_producer",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["cairn", "example"],
) as producer:

    @task
    def write_shard(shard: int, ds: str | None = None) -> str:
        """One CSV per shard; its rows depend only on the date, so a re-run matches."""
        path = os.path.join(DATA, "events", str(ds), f"part-{shard:03d}.csv")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(["date", "shard", "event", "value"])
            for i in range(100 * (shard + 1)):
                rows.writerow([ds, shard, f"e{shard}-{i}", (i * 7 + shard) % 101])
        return path

    upsert = UpsertArtifactOperator.partial(
        task_id="upsert_shard", project=PROJECT, name=NAME, prefix="shards"
    ).expand(path=write_shard.expand(shard=list(range(SHARDS))))

    commit = FinishArtifactOperator(
        task_id="commit",
        project=PROJECT,
        name=NAME,
        description="events of {{ ds }}",
        metadata={"date": "{{ ds }}", "shards": SHARDS},
        aliases=["daily"],
    )
    upsert >> commit


with DAG(
    dag_id="cairn_sharded_consumer",
    schedule=[EVENTS],
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["cairn", "example"],
) as consumer:

    @task
    def pick_version(**context) -> str:
        """The version the triggering asset event names, else the newest."""
        events = context["triggering_asset_events"].get(EVENTS) or []
        return events[-1].extra["ref"] if events else f"{PROJECT}/{NAME}:latest"

    ref = pick_version()
    fetch = UseArtifactOperator(task_id="fetch", project=PROJECT, ref=ref)

    @task
    def count_rows(folder: str, ref: str) -> int:
        """TaskFlow style: a cairn run for this task instance, then plain Python."""
        with task_run(CairnHook().get_repository(), project=PROJECT) as run:
            v = run.use_artifact(ref)
        rows = 0
        for entry in v.files():
            with open(os.path.join(folder, entry.path)) as f:
                rows += sum(1 for _ in f) - 1
        print(f"{v.ref}: {rows} rows in {len(v.files())} shards")
        return rows

    count_rows(fetch.output, ref)


if __name__ == "__main__":
    from cairn_airflow.standalone import main

    sys.exit(main(producer, consumer))
