"""Operators given bad input: each task must fail on its first try with cairn's message."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from cairn_airflow import FinishArtifactOperator, LogArtifactOperator, UseArtifactOperator

MISSING_FILE = "/nonexistent/cairn-test/data.csv"

with DAG(
    "cairn_test_errors",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    default_args={"retries": 2, "retry_delay": timedelta(0)},
) as dag:
    # each task's cairn run creates project demo: the messages do not depend on task order
    UseArtifactOperator(task_id="unknown_version", project="demo", ref="demo/nothing:v7")
    UseArtifactOperator(task_id="malformed_ref", project="demo", ref="demo/../etc:v1")
    LogArtifactOperator(task_id="missing_path", project="demo", name="things", paths=MISSING_FILE)
    FinishArtifactOperator(task_id="finish_without_parts", project="demo", name="never_upserted")
