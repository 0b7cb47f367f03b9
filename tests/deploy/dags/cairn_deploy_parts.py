"""The DAG the Airflow deployment test runs (tests/deploy/test_airflow_deployment.py).

A DAG run assembles one version of `deploy/parts` from the part folders in the folder its
conf names: `list_parts` lists them, each mapped `upsert` task sends one folder as its part
(under `part-NN/`, NN being its map index), `finish` commits the version and `use`
downloads it, as three kinds of workers of a real deployment would.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from cairn_airflow import FinishArtifactOperator, UpsertArtifactOperator, UseArtifactOperator

with DAG(
    dag_id="cairn_deploy_parts",
    schedule=None,
    catchup=False,
    params={"folder": ""},
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
    tags=["cairn-deploy-test"],
):

    @task
    def list_parts(params: dict[str, Any] | None = None) -> list[str]:
        """The run's part folders, in name order (map index i is the i-th folder)."""
        assert params and params["folder"], "trigger with conf {'folder': ...}"
        return sorted(str(p) for p in Path(params["folder"]).iterdir() if p.is_dir())

    upsert = UpsertArtifactOperator.partial(
        task_id="upsert",
        project="deploy",
        name="parts",
        prefix="part-{{ '%02d' % ti.map_index }}",
    ).expand(path=list_parts())
    finish = FinishArtifactOperator(task_id="finish", project="deploy", name="parts")
    use = UseArtifactOperator(
        task_id="use", project="deploy", ref="{{ ti.xcom_pull(task_ids='finish') }}"
    )
    upsert >> finish >> use
