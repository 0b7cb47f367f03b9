"""A collection named by a template: its asset is only known when the task runs."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, task

from cairn_airflow import LogArtifactOperator, UseArtifactOperator

with DAG("cairn_test_templated", schedule=None, start_date=datetime(2024, 1, 1)) as dag:

    @task
    def make_notes(ds: str | None = None) -> str:
        folder = os.path.join(os.environ["CAIRN_TEST_DATA"], "notes", str(ds))
        os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
        for name in ("notes.txt", "sub/more.txt"):
            with open(os.path.join(folder, name), "w") as f:
                f.write(f"{name} of {ds}\n")
        return folder

    logged = LogArtifactOperator(
        task_id="log",
        project="demo",
        name="notes_{{ ds_nodash }}",
        paths=make_notes(),
        aliases=["first"],
        metadata={"ds": "{{ ds }}"},
    )
    UseArtifactOperator(task_id="read_one", project="demo", ref=logged.output, path="notes.txt")
