"""A hyperparameter sweep: mapped tasks train three tiny models, the best becomes `production`.

`train.map(...)` trains one model per learning rate. Each task run is its own cairn run
(one per mapped task run, grouped by the flow run), reached with `current_run()` without
passing any ids, configured with its learning rate. It logs its metrics to the run's
summary and its model as a version of `demo/sweep-model` (whose ref it adds to the
summary). `promote` asks cairn for the flow run's best training run (`search_runs`,
sorted by validation accuracy) and moves the `production` alias to that run's model.

    python dags_examples/prefect_model_sweep.py
    cairn runs --where "job_type = 'train'" --sort -summary.val_acc
    cairn ls demo/sweep-model --sort -metadata.val_acc

Point it at a shared repository with a saved block: `--repository BLOCK_NAME`. Exits
non-zero when the flow fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import tiny_model
from prefect import flow, task, unmapped

from cairn import Artifact
from cairn_prefect import current_run

LEARNING_RATES = [0.1, 3.0, 1.0]
EPOCHS = 25


@task
def train(lr: float, *, project: str, workdir: str, repository: str | None = None) -> str:
    """Fit one model; its run holds the config, the metrics and the model it logged."""
    run = current_run(project=project, config={"lr": lr, "epochs": EPOCHS}, repository=repository)
    model = tiny_model.fit(lr, epochs=EPOCHS)
    path = model.save(Path(workdir) / f"lr-{lr}")
    art = Artifact("sweep-model", "model", metadata={"lr": lr, "val_acc": model.val_acc})
    v = run.log_artifact(art.add_file(str(path)))
    # the version it made (or found: a model identical to one logged before)
    run.log_summary({"val_acc": model.val_acc, "val_loss": model.val_loss, "model": v.ref})
    print(f"lr={lr}: val_acc={model.val_acc} val_loss={model.val_loss} -> {v.ref}")
    return v.ref


@task
def promote(*, project: str, repository: str | None = None) -> str:
    """Alias the model of this flow run's best training run `production`."""
    run = current_run(project=project, repository=repository)
    best = run.repository.search_runs(
        "group = :group AND job_type = 'train' AND summary.val_acc != null",
        params={"group": run.group},
        project=project,
        order_by="-summary.val_acc",
        limit=1,
    )
    if not best:
        raise RuntimeError(f"no training run of flow run {run.group} reported val_acc")
    model = run.use_artifact(best[0].summary["model"])  # lineage: promote used it
    model.aliases.append("production")
    model.save()
    print(f"best: {best[0].name} {best[0].summary} -> {model.ref}")
    return model.ref


@flow(name="cairn-model-sweep", log_prints=True)
def model_sweep(
    learning_rates: list[float] | None = None,
    project: str = "demo",
    workdir: str | None = None,
    repository: str | None = None,
) -> str:
    """Train one model per learning rate in parallel, then promote the best."""
    workdir = workdir or tempfile.mkdtemp(prefix="cairn-sweep-")
    trained = train.map(
        learning_rates or LEARNING_RATES,
        project=unmapped(project),
        workdir=unmapped(workdir),
        repository=unmapped(repository),
    )
    trained.result()  # raises if a training run failed: nothing is promoted then
    return promote(project=project, repository=repository)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, action="append", help="a learning rate (repeat)")
    parser.add_argument("--repository", help="name of a saved CairnRepository block")
    args = parser.parse_args(argv)
    state = model_sweep(learning_rates=args.lr, repository=args.repository, return_state=True)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
