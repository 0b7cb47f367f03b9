"""Set up the promotion example (dags_examples/prefect_promotion.py, copied beside this
file) as its operator would: the process work pool, the `CairnRepository` block named
`deploy`, and the deployments `train/main` and `score/main`, the latter triggered by
`production` moving.

    PREFECT_API_URL=... python setup_deployment.py FOLDER POOL BLOCK_JSON

Prints the ids of `score/main` and then `train/main` (the deployment the test runs).
Runs with .venv-prefect's interpreter.
"""

from __future__ import annotations

import json
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.workers.process import ProcessWorker
from prefect_promotion import deploy

from cairn_prefect import CairnRepository


def main(folder: str, pool: str, block: str) -> None:
    with get_client(sync_client=True) as client:
        template = ProcessWorker.get_default_base_job_template()
        client.create_work_pool(
            WorkPoolCreate(name=pool, type="process", base_job_template=template), overwrite=True
        )
    CairnRepository(**json.loads(block)).save("deploy", overwrite=True)
    train, score = deploy(folder, pool, repository="deploy")
    print(score, train)


if __name__ == "__main__":
    main(*sys.argv[1:])
