"""React to a promotion: a deployment that runs whenever `production` moves to a new model.

`train` logs a model (`demo/model`) and, when asked, points `production` at it. Moving the
alias is a cairn event, `cairn.alias.moved`, which the cairn tasks also send to Prefect.
The `score` deployment has a trigger on that event, filtered on the alias: each promotion
starts a flow run of `score` with the promoted version's ref, which uses the model (the
asset graph shows demo/model -> demo/scores) and logs what it scored as `demo/scores`.
Moving `production` from the CLI (`cairn alias add demo/model:v3 production`) triggers it
too, in any process where Prefect has an API URL configured.

Deploy both flows to a process work pool, then train:

    prefect work-pool create pool --type process
    python dags_examples/prefect_promotion.py deploy --pool pool
    prefect worker start --pool pool
    prefect deployment run train/main -p promote=true

`repository` is a saved `CairnRepository` block's name (None: the worker's CAIRN_* variables,
else ~/.cairn); every worker must see the same catalog and store.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

from prefect import flow, task
from prefect.events import DeploymentEventTrigger

from cairn_prefect import log_artifact, use_artifact

PROJECT = "demo"


def production_moved(repository: str | None = None) -> DeploymentEventTrigger:
    """Run the deployment with the ref `production` now names, each time it moves."""
    return DeploymentEventTrigger(
        name="cairn production moved",
        expect={"cairn.alias.moved"},
        match={"cairn.alias": "production", "cairn.project": PROJECT, "cairn.name": "model"},
        parameters={"ref": "{{ event.payload.ref }}", "repository": repository},
    )


@task
def fit(seed: int, workdir: str) -> str:
    """A stand-in for training: a small JSON model, different for each seed."""
    folder = Path(workdir) / f"model-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    weights = [int(b) for b in hashlib.sha256(str(seed).encode()).digest()[:8]]
    (folder / "model.json").write_text(json.dumps({"seed": seed, "weights": weights}))
    return str(folder)


@flow
def train(seed: int = 0, promote: bool = False, repository: str | None = None) -> str:
    """Log a model; `promote` moves `production` to it (the event `score` waits for)."""
    with tempfile.TemporaryDirectory() as workdir:
        return log_artifact(
            fit(seed, workdir),
            name="model",
            type="model",
            project=PROJECT,
            aliases=["production"] if promote else ["candidate"],
            metadata={"seed": seed, "owners": ["ml-team@example.com"]},
            repository=repository,
        )


@task
def score_with(model_dir: str, workdir: str) -> str:
    """Score a fixed batch with the model: one number per input."""
    model = json.loads((Path(model_dir) / "model.json").read_text())
    scores = [
        sum(w * x for w, x in zip(model["weights"], range(i, i + 8), strict=True)) for i in range(5)
    ]
    out = Path(workdir) / "scores"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps({"seed": model["seed"], "scores": scores}))
    return str(out)


@flow
def score(ref: str, repository: str | None = None) -> str:
    """Score with the version `ref` names (the trigger passes the promoted one)."""
    with tempfile.TemporaryDirectory() as workdir:
        model_dir = use_artifact(ref, root=str(Path(workdir) / "model"), repository=repository)
        return log_artifact(
            score_with(model_dir, workdir),
            name="scores",
            project=PROJECT,
            metadata={"model": ref},
            repository=repository,
        )


def deploy(source: str, pool: str, repository: str | None = None) -> tuple[str, str]:
    """Deploy `train` and `score` (triggered by `production` moving) from the folder
    `source` holding this file; returns their deployment ids."""
    entry = Path(__file__).name
    ids = []
    for name, triggers in (("train", []), ("score", [production_moved(repository)])):
        ids.append(
            flow.from_source(source=source, entrypoint=f"{entry}:{name}").deploy(
                name="main",
                work_pool_name=pool,
                parameters={"repository": repository},
                triggers=triggers,
                print_next_steps=False,
            )
        )
    return str(ids[0]), str(ids[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["deploy"])
    parser.add_argument("--pool", required=True)
    parser.add_argument("--repository", default=None, help="a saved CairnRepository block")
    args = parser.parse_args()
    print(*deploy(str(Path(__file__).parent), args.pool, args.repository))
