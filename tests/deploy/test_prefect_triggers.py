"""A flow started by `production` moving: the promotion example
(dags_examples/prefect_promotion.py) deployed to a real Prefect server (on PostgreSQL)
with a process worker, cairn on a PostgreSQL catalog and an S3 store (moto).

`train/main` logs a model; with `promote=true` it moves `production`, a cairn event the
task sends to Prefect as `cairn.alias.moved`. `score/main` has a `DeploymentEventTrigger`
on that event filtered on the alias: the server starts it with the promoted ref, and it
logs `demo/scores` from that model. A model logged as `candidate` starts nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backend import CairnBackend
from prefect_stack import PrefectDeployment, prefect_deployment
from stack import ROOT, describe_logs, wait_for

from cairn import Repository

SETUP = Path(__file__).parent / "promotion" / "setup_deployment.py"
EXAMPLE = ROOT / "dags_examples" / "prefect_promotion.py"


@pytest.fixture(scope="module")
def prefect(
    postgres_url: str, cairn_backend: CairnBackend, deploy_dir: Path, deploy_logs: Path
) -> Iterator[PrefectDeployment]:
    flows = deploy_dir / "promotion-src"
    flows.mkdir()
    shutil.copy(SETUP, flows)
    shutil.copy(EXAMPLE, flows)
    options = cairn_backend.storage_options(through_proxy=False)
    block = {
        "catalog": cairn_backend.catalog,
        "store": cairn_backend.store,
        "storage_options": {"client_kwargs": options["client_kwargs"]},
        "storage_secrets": {"key": options["key"], "secret": options["secret"]},
    }
    env = {"CAIRN_HOME": str(deploy_dir / "promotion-cairn-home"), **cairn_backend.s3.environ}
    with prefect_deployment(
        deploy_dir / "promotion",
        deploy_logs / "promotion",
        postgres_url,
        flows=flows,
        block=block,
        env=env,
    ) as deployment:
        yield deployment


def flow_runs_of(pf: PrefectDeployment, flow_name: str) -> list[dict[str, Any]]:
    body = {"flows": {"name": {"any_": [flow_name]}}, "sort": "EXPECTED_START_TIME_ASC"}
    out: list[dict[str, Any]] = pf.api.call("POST", "/flow_runs/filter", body)
    return out


def events(pf: PrefectDeployment, name: str) -> list[dict[str, Any]]:
    body = {"filter": {"event": {"name": [name]}, "order": "ASC"}, "limit": 50}
    found: list[dict[str, Any]] = pf.api.call("POST", "/events/filter", body)["events"]
    return found


def test_moving_production_starts_the_triggered_deployment_with_the_promoted_ref(
    prefect: PrefectDeployment, repo: Repository
) -> None:
    prefect.wait_for_flow_run(prefect.run({"seed": 1, "promote": False}))
    promoted = prefect.wait_for_flow_run(prefect.run({"seed": 2, "promote": True}))
    model = repo.artifact("demo/model:production")
    assert model.version == "v1" and model.metadata["seed"] == 2
    assert repo.artifact("demo/model:candidate").version == "v0"

    # the server saw the move as a Prefect event, the asset related
    moved = wait_for(
        "the cairn.alias.moved event of production",
        lambda: (
            [
                e
                for e in events(prefect, "cairn.alias.moved")
                if e["resource"].get("cairn.alias") == "production"
            ]
            or None
        ),
        timeout=60,
        logs=prefect.logs(),
    )
    (event,) = moved
    assert event["resource"]["cairn.ref"] == "demo/model:v1"
    assert event["payload"]["digest"] == model.digest
    assert event["payload"]["aliases"] == ["latest", "production"]
    (asset,) = [r for r in event["related"] if r["prefect.resource.role"] == "asset"]
    assert asset["prefect.resource.id"] == "cairn://demo/model"
    assert any(
        r["prefect.resource.id"] == f"prefect.flow-run.{promoted['id']}" for r in event["related"]
    )

    # the trigger started `score` once, with the promoted ref, and it completed
    (run,) = wait_for(
        "the triggered score flow run",
        lambda: flow_runs_of(prefect, "score") or None,
        timeout=120,
        logs=prefect.logs(),
    )
    assert run["parameters"] == {"ref": "demo/model:v1", "repository": "deploy"}
    prefect.wait_for_flow_run(run["id"])
    scores = repo.artifact("demo/scores:latest")
    assert scores.metadata == {"model": "demo/model:v1"}
    (user,) = model.used_by()
    assert user.attributes["flow_run_id"] == run["id"]
    assert scores.logged_by().attributes["flow_run_id"] == run["id"]
    # the candidate started nothing: its event came first, and only one run exists
    assert len(flow_runs_of(prefect, "score")) == 1, describe_logs(prefect.logs())
