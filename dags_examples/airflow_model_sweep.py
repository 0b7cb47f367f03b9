"""A hyperparameter sweep: mapped tasks train three tiny models, the best becomes `production`.

    python dags_examples/airflow_model_sweep.py

runs the DAG with `dag.test()` on cairn's embedded default (~/.cairn, or $CAIRN_HOME) and
exits non-zero if a task failed. Then:

    cairn runs --where "job_type = 'train'" --sort -summary.val_acc
    cairn ls demo/sweep-model --sort -metadata.val_acc

`train` is mapped over the learning rates: each task instance is its own cairn run (one
per map index, grouped by the DAG run), reached with `current_run()` without passing any
ids, configured with its learning rate. It trains, logs its metrics to the run's summary
and its model as a version of `demo/sweep-model` (whose ref it adds to the summary).
`promote` asks cairn for the best run of this DAG run (`search_runs`, sorted by
validation accuracy) and moves the `production` alias to that run's model.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime

from airflow.sdk import DAG, task

from cairn import Artifact
from cairn_airflow import current_run

PROJECT, MODEL = "demo", "sweep-model"
LEARNING_RATES = [0.1, 3.0, 1.0]
EPOCHS = 25
DATA = os.environ.get("CAIRN_EXAMPLE_DATA") or os.path.join(tempfile.gettempdir(), "cairn-example")

with DAG(
    dag_id="cairn_model_sweep",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["cairn", "example"],
) as sweep:

    @task
    def train(lr: float, run_id: str | None = None) -> str:
        """Fit one model; its run holds the config, the metrics and the model it logged."""
        import tiny_model  # beside this file, in the DAGs folder

        run = current_run(project=PROJECT, config={"lr": lr, "epochs": EPOCHS})
        model = tiny_model.fit(lr, epochs=EPOCHS)
        path = model.save(os.path.join(DATA, "sweep", str(run_id), f"lr-{lr}"))
        art = Artifact(MODEL, "model", metadata={"lr": lr, "val_acc": model.val_acc})
        v = run.log_artifact(art.add_file(str(path)))
        # the version it made (or found: a model identical to one logged before)
        run.log_summary({"val_acc": model.val_acc, "val_loss": model.val_loss, "model": v.ref})
        print(f"lr={lr}: val_acc={model.val_acc} val_loss={model.val_loss} -> {v.ref}")
        return v.ref

    @task
    def promote(candidates: list[str]) -> str:
        """Alias the model of this DAG run's best training run `production`."""
        run = current_run(project=PROJECT)
        repo = run.repository
        best = repo.search_runs(
            "group = :group AND job_type = 'train' AND summary.val_acc != null",
            params={"group": run.group},
            project=PROJECT,
            order_by="-summary.val_acc",
            limit=1,
        )
        if not best:
            raise RuntimeError(f"no training run of {run.group} reported val_acc")
        model = run.use_artifact(best[0].summary["model"])  # lineage: promote used it
        model.aliases.append("production")
        model.save()
        print(f"best of {len(candidates)}: {best[0].name} {best[0].summary} -> {model.ref}")
        return model.ref

    promote(train.expand(lr=LEARNING_RATES))


if __name__ == "__main__":
    from cairn_airflow.standalone import main

    sys.exit(main(sweep))
