"""Mapped writers that fail once after upserting, then succeed on their retry.

`cairn_test_retry_operator`: `UpsertArtifactOperator` mapped over three files; shard 1's
first try upserts, then the "worker dies" (after rewriting its file), so the retry
upserts different bytes. `cairn_test_retry_taskflow`: the same with a TaskFlow task
using `task_run` and `upsert_part`. Either way the committed version must hold the
retried content once, not both tries' parts.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from cairn import Artifact
from cairn_airflow import CairnHook, FinishArtifactOperator, UpsertArtifactOperator, task_run
from cairn_airflow.distributed import upsert_part

RETRY = {"retries": 1, "retry_delay": timedelta(0)}


def shard_path(i: int) -> str:
    folder = os.path.join(os.environ["CAIRN_TEST_DATA"], "shards")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"shard-{i}.txt")


class FlakyUpsert(UpsertArtifactOperator):
    """Upserts, then fails the first try of map index 1 as if the worker died."""

    def execute(self, context):
        result = super().execute(context)
        ti = context["ti"]
        if ti.try_number == 1 and ti.map_index == 1:
            with open(self.path, "w") as f:
                f.write("shard 1, second try: longer content\n")
            raise RuntimeError("worker lost after upserting")
        return result


with DAG("cairn_test_retry_operator", schedule=None, start_date=datetime(2024, 1, 1)) as op_dag:

    @task
    def write(i: int) -> str:
        with open(shard_path(i), "w") as f:
            f.write(f"shard {i}, first try\n")
        return shard_path(i)

    upserts = FlakyUpsert.partial(task_id="upsert", project="demo", name="shards", **RETRY).expand(
        path=write.expand(i=[0, 1, 2])
    )
    upserts >> FinishArtifactOperator(task_id="finish", project="demo", name="shards")


with DAG("cairn_test_retry_taskflow", schedule=None, start_date=datetime(2024, 1, 1)) as tf_dag:

    @task(**RETRY)
    def write_and_upsert(i: int, **context) -> str:
        try_number = context["ti"].try_number
        art = Artifact("tf_shards")
        with art.new_file(f"shard-{i}.txt") as f:
            f.write(f"shard {i}, try {try_number}\n")
        with task_run(CairnHook().get_repository(), project="demo") as run:
            v = upsert_part(run, art)
        if i == 0 and try_number == 1:
            raise RuntimeError("worker lost after upserting")
        return v.distributed_id

    write_and_upsert.expand(i=[0, 1]) >> FinishArtifactOperator(
        task_id="finish", project="demo", name="tf_shards"
    )
