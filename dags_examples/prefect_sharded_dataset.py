"""A dataset written in shards by mapped tasks, committed once, then read by a consumer.

Each `make_shard` task writes one CSV shard; `upsert_artifact.map` adds every shard as a part
of one PENDING version (its distributed id is the flow run); `finish_artifact` commits it
atomically as the next version of `demo/shards`, and publishes a table artifact summarising
it. `count_rows` then uses the committed version, which records the lineage
(version -> used by -> task run).

Run it on the embedded default repository (`~/.cairn`, or `$CAIRN_HOME`):

    python dags_examples/prefect_sharded_dataset.py                # default task runner
    python dags_examples/prefect_sharded_dataset.py --processes 2  # parts from worker processes
    cairn show demo/shards:latest

Point it at a shared repository with a saved block: `--repository BLOCK_NAME`. Exits non-zero
when the flow fails.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

from prefect import flow, get_client, task, unmapped
from prefect.task_runners import ProcessPoolTaskRunner

from cairn_prefect import finish_artifact, upsert_artifact, use_artifact


@task
def make_shard(index: int, *, workdir: str, rows: int, seed: int) -> str:
    """Write shard `index` (deterministic for a given seed) and return its path."""
    path = Path(workdir) / f"shard-{index:04d}.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["shard", "row", "value"])
        for row in range(rows):
            out.writerow([index, row, (index * 7919 + row * 104729 + seed) % 1000])
    return str(path)


@task
def count_rows(folder: str) -> int:
    """The consumer: read every shard of the downloaded version."""
    total = 0
    for shard in sorted(Path(folder).rglob("*.csv")):
        with shard.open(newline="") as f:
            total += sum(1 for _ in csv.DictReader(f))
    return total


@flow(name="cairn-sharded-dataset", log_prints=True)
def sharded_dataset(
    shards: int = 4,
    rows: int = 1000,
    seed: int = 0,
    project: str = "demo",
    name: str = "shards",
    aliases: list[str] | None = None,
    workdir: str | None = None,
    repository: str | None = None,
) -> dict[str, object]:
    """Write `shards` shards in parallel, commit them as one version, then consume it."""
    workdir = workdir or tempfile.mkdtemp(prefix="cairn-shards-")
    os.makedirs(workdir, exist_ok=True)
    paths = make_shard.map(range(shards), workdir=workdir, rows=rows, seed=seed)
    parts = upsert_artifact.map(
        paths,
        name=name,
        project=project,
        prefix="parts",
        repository=unmapped(repository),
    )
    # .result() raises if a shard failed (after its retries): the flow fails and nothing is
    # committed (a task whose upstream failed would be skipped without failing the flow)
    ref = finish_artifact(
        name=name,
        project=project,
        parts=parts.result(),
        aliases=aliases or [],
        metadata={"shards": shards, "rows_per_shard": rows, "seed": seed},
        repository=repository,
    )
    local = use_artifact(ref, root=os.path.join(workdir, "download"), repository=repository)
    total = count_rows(local)
    print(f"{ref}: {total} rows in {shards} shards")
    return {"ref": ref, "rows": total}


def _share_temporary_server() -> None:
    """Without PREFECT_API_URL, a plain script runs a temporary Prefect server, and each
    worker process would start its own: point the workers at this process's one."""
    if not os.environ.get("PREFECT_API_URL"):
        with get_client(sync_client=True) as client:  # starts the temporary server
            os.environ["PREFECT_API_URL"] = str(client.api_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="change it to change the data")
    parser.add_argument("--processes", type=int, default=0, help="use a process pool of N")
    parser.add_argument("--repository", help="name of a saved CairnRepository block")
    args = parser.parse_args(argv)
    run = sharded_dataset
    if args.processes:
        _share_temporary_server()
        run = sharded_dataset.with_options(
            task_runner=ProcessPoolTaskRunner(max_workers=args.processes)
        )
    state = run(
        shards=args.shards,
        rows=args.rows,
        seed=args.seed,
        repository=args.repository,
        return_state=True,
    )
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
