"""A daily incremental dataset: each day adds its files to yesterday's version.

    python dags_examples/airflow_daily_incremental.py

runs the DAG for 2024-01-01, -02 and -03 with `dag.test()` on cairn's embedded default
(~/.cairn, or $CAIRN_HOME) and exits non-zero if a task failed.

Every day `fetch_day` downloads (here: generates) the day's files, and the source may
retract files it published earlier. `LogArtifactOperator(incremental=True)` starts from
the newest version of `demo/clicks` (`new_draft()`), adds the day's folder under
`days/<date>/`, drops the retracted files and logs the next version: only the day's new
bytes are hashed and stored. `report` shows the TaskFlow way: a cairn run for the task
instance, `use_artifact`, `repo.diff` against the previous version.

Re-running a day gives back the version it made (identical content is never a new
version), and dropping an already dropped file is not an error.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime, timezone

from airflow.sdk import DAG, task

from cairn_airflow import CairnHook, LogArtifactOperator, task_run

PROJECT, NAME = "demo", "clicks"
DATA = os.environ.get("CAIRN_EXAMPLE_DATA") or os.path.join(tempfile.gettempdir(), "cairn-example")
#: what the source retracts on a given day: files it published earlier that were bad
RETRACTIONS = {"2024-01-03": ["days/2024-01-01/clicks-1.csv"]}

with DAG(
    dag_id="cairn_daily_incremental",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["cairn", "example"],
) as dag:

    @task(multiple_outputs=True)
    def fetch_day(ds: str | None = None) -> dict[str, object]:
        """The day's files in a folder of their own, and the source's retractions."""
        folder = os.path.join(DATA, "clicks", str(ds))
        os.makedirs(folder, exist_ok=True)
        for part in range(2):
            with open(os.path.join(folder, f"clicks-{part}.csv"), "w") as f:
                f.write("date,page,clicks\n")
                f.writelines(f"{ds},/page/{i},{(i * 13 + part) % 50}\n" for i in range(200))
        return {"folder": folder, "retracted": RETRACTIONS.get(str(ds), [])}

    day = fetch_day()

    log_day = LogArtifactOperator(
        task_id="log_day",
        project=PROJECT,
        name=NAME,
        paths=day["folder"],
        prefix="days/{{ ds }}",
        incremental=True,
        remove=day["retracted"],
        metadata={"last_day": "{{ ds }}"},
        description="clicks up to {{ ds }}",
    )

    @task
    def report(ref: str) -> dict[str, int]:
        """TaskFlow style: the task instance's cairn run, then the core API."""
        repo = CairnHook().get_repository()
        with task_run(repo, project=PROJECT) as run:
            v = run.use_artifact(ref)
        summary = {"files": v.file_count, "bytes": v.size}
        if v.index:
            d = repo.diff(f"{v.project}/{v.name}:v{v.index - 1}", v.ref)
            summary.update(added=len(d.added), removed=len(d.removed))
        print(f"{v.ref}: {summary}")
        return summary

    report(log_day.output)


if __name__ == "__main__":
    from cairn_airflow.standalone import main

    days = [datetime(2024, 1, d, tzinfo=timezone.utc) for d in (1, 2, 3)]
    sys.exit(main(dag, logical_dates=days))
