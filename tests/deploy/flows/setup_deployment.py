"""Set up the Prefect side of the deployment test, as its operator would: the process work
pool, the `CairnRepository` block the flows use, and the deployment of the flow.

    PREFECT_API_URL=... python setup_deployment.py FLOWS_FOLDER POOL BLOCK_JSON

Prints the deployment's id. Runs with .venv-prefect's interpreter.
"""

from __future__ import annotations

import json
import sys

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.workers.process import ProcessWorker

from cairn_prefect import CairnRepository


def main(folder: str, pool: str, block: str) -> None:
    with get_client(sync_client=True) as client:
        template = ProcessWorker.get_default_base_job_template()
        client.create_work_pool(
            WorkPoolCreate(name=pool, type="process", base_job_template=template), overwrite=True
        )
    fields = json.loads(block)
    CairnRepository(**fields).save("deploy", overwrite=True)
    deployment_id = flow.from_source(
        source=folder, entrypoint="cairn_deploy_flows.py:cairn_deploy_parts"
    ).deploy(name="main", work_pool_name=pool, print_next_steps=False)
    print(deployment_id)


if __name__ == "__main__":
    main(*sys.argv[1:])
