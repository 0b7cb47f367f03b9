"""`current_run()` from TaskFlow code, and operators' `config=` / `metrics=`.

`cairn_test_current_run`: a mapped task reports metrics through `current_run()` (no
`with`: the task's own callbacks finish the run); one map index fails once and succeeds
on its retry; `double` calls `current_run()` twice; `broken` fails for good.
`cairn_test_operator_metrics`: `LogArtifactOperator` with templated `config` and `metrics`.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from cairn_airflow import LogArtifactOperator, current_run

with DAG("cairn_test_current_run", schedule=None, start_date=datetime(2024, 1, 1)) as dag:

    @task(retries=1, retry_delay=timedelta(0))
    def score(x: int, **context) -> str:
        run = current_run(project="demo", config={"x": x})
        run.log_summary({"score": x * 10, "try": context["ti"].try_number})
        if x == 2 and context["ti"].try_number == 1:
            raise RuntimeError("lost the worker")
        return run.id

    @task
    def double() -> str:
        first = current_run(project="demo")
        second = current_run(config={"extra": True})
        assert second is first
        with current_run(project="demo") as run:
            run.log_summary({"twice": True})
        return run.id

    @task
    def broken() -> None:
        current_run(project="demo").log_summary({"before": "crash"})
        raise ValueError("bad data")

    @task
    def outside_project() -> str:
        run = current_run(project="demo")
        try:
            current_run(project="elsewhere")
        except Exception as exc:  # the message is checked by the test
            return str(exc)
        return f"no error from {run.id}"

    score.expand(x=[1, 2, 3]) >> double() >> broken()
    outside_project()


with DAG("cairn_test_operator_metrics", schedule=None, start_date=datetime(2024, 1, 1)) as ops:

    @task
    def write() -> str:
        path = os.path.join(os.environ["CAIRN_TEST_DATA"], "rows.csv")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("a\n1\n2\n")
        return path

    LogArtifactOperator(
        task_id="log",
        project="demo",
        name="rows",
        paths=write(),
        config={"source": "{{ dag.dag_id }}"},
        metrics={"rows": 2, "date": "{{ ds }}"},
    )
