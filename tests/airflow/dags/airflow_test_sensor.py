"""`ArtifactAliasSensor` waiting for demo/model:production to move past v0, both ways."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from cairn_airflow import ArtifactAliasSensor

for dag_id, deferrable in (("cairn_test_sensor_poke", False), ("cairn_test_sensor_deferred", True)):
    with DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        ArtifactAliasSensor(
            task_id="wait",
            ref="demo/model:production",
            newer_than="v0",
            poke_interval=0.2,
            timeout=60,
            deferrable=deferrable,
        )
    globals()[dag_id] = dag
