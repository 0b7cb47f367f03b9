"""A real Prefect 3 deployment on 127.0.0.1: a Prefect server (its database on
PostgreSQL), a process work pool and a worker, each a separate process.

    with prefect_deployment(workdir, logs, postgres_url, flows=..., block={...}, env={...}) as pf:
        flow_run = pf.run(parameters={...})
        pf.wait_for_flow_run(flow_run)

Every process runs from .venv-prefect in its own process group, logging to a file under
`logs` (the worker's log holds the output of the flow-run processes it starts); each
failure message names those files. On exit the worker gets SIGINT and the server SIGTERM,
then SIGKILL, with whatever is left of their process groups; flow-run processes that left
the worker's group are swept last (processes.py).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import servers
from processes import new_mark, sweep
from stack import (
    DeployError,
    JsonApi,
    database_url,
    describe_logs,
    service_environ,
    venv_bin,
    wait_for,
)

POOL = "deploy-pool"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class PrefectDeployment:
    """The running deployment: its REST API, the deployment to run, its logs."""

    def __init__(self, url: str, log_dir: Path, deployment_id: str):
        self.api = JsonApi(url)
        self.log_dir = log_dir
        self.deployment_id = deployment_id

    def run(self, parameters: dict[str, Any]) -> str:
        """Start a flow run of the deployment; returns its id."""
        flow_run = self.api.call(
            "POST",
            f"/deployments/{self.deployment_id}/create_flow_run",
            {"parameters": parameters},
        )
        return str(flow_run["id"])

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.api.call("GET", f"/flow_runs/{flow_run_id}")
        return out

    def flow_process(self, flow_run_id: str) -> int:
        """The PID of the flow run's process, as its worker recorded it."""
        pid: str = wait_for(
            f"the worker to record the process of flow run {flow_run_id}",
            lambda: self.flow_run(flow_run_id).get("infrastructure_pid"),
            timeout=30,
            logs=self.logs(),
        )
        return int(pid.rpartition(":")[2])

    def wait_for_flow_run(self, flow_run_id: str, *, timeout: float = 240) -> dict[str, Any]:
        """Wait until the flow run ends; fail (naming the logs) unless it completed."""
        run = wait_for(
            f"flow run {flow_run_id} to end",
            lambda: (r := self.flow_run(flow_run_id))["state_type"] in FINAL and r,
            timeout=timeout,
            logs=self.logs(),
            interval=1.0,
        )
        if run["state_type"] != "COMPLETED":
            raise DeployError(
                f"flow run {flow_run_id} ended {run['state_type']} "
                f"({run['state']['message']}); {describe_logs(self.logs())}"
            )
        return run

    def task_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200}
        out: list[dict[str, Any]] = self.api.call("POST", "/task_runs/filter", body)
        return out

    def logs(self) -> list[Path]:
        return sorted(self.log_dir.glob("*.log"))


@contextlib.contextmanager
def prefect_deployment(
    workdir: Path,
    logs: Path,
    postgres_url: str,
    *,
    flows: Path,
    block: dict[str, Any],
    env: dict[str, str],
) -> Iterator[PrefectDeployment]:
    """Start the server, create the work pool, save `block` as the `CairnRepository` block
    named `deploy`, deploy the flow in `flows`, start a worker; stop them all on exit."""
    prefect = str(venv_bin(".venv-prefect", "prefect"))
    python = str(venv_bin(".venv-prefect", "python"))
    home, folder = workdir / "prefect-home", workdir / "flows"
    for d in (home, logs):
        d.mkdir(parents=True, exist_ok=True)
    shutil.copytree(flows, folder, ignore=shutil.ignore_patterns("__pycache__"))
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}/api"
    mark = new_mark()
    with servers.fresh_database(postgres_url) as db:
        environ = service_environ(("PREFECT_", "CAIRN_"))
        environ |= {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": url,
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url(db, "postgresql+asyncpg"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            **env,
            **mark,
        }
        deployment = PrefectDeployment(url, logs, deployment_id="")
        with contextlib.ExitStack() as stack:
            stack.callback(sweep, mark)  # last: flow-run processes may leave the worker's group
            server = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
            stack.enter_context(
                servers.running(
                    "prefect server",
                    server,
                    logs / "server.log",
                    lambda: deployment.api.answers_ok("/health"),
                    env=environ,
                )
            )
            setup_log = logs / "setup.log"
            with setup_log.open("wb") as out:
                done = subprocess.run(
                    [python, str(folder / "setup_deployment.py"), str(folder), POOL,
                     json.dumps(block)],
                    env=environ, stdout=subprocess.PIPE, stderr=out, cwd=folder, timeout=120,
                )  # fmt: skip
            if done.returncode:
                raise DeployError(f"setting up the deployment failed; {describe_logs([setup_log])}")
            deployment.deployment_id = done.stdout.decode().split()[-1]
            worker = [prefect, "worker", "start", "--pool", POOL, "--type", "process"]
            # SIGINT: the worker's own way to stop (it shuts down its runs' watchers)
            stack.enter_context(
                servers.running(
                    "prefect worker",
                    worker,
                    logs / "worker.log",
                    lambda: True,
                    signal.SIGINT,
                    env=environ,
                    cwd=folder,
                )
            )
            wait_for(
                "the worker to report to the work pool",
                lambda: deployment.api.call("POST", f"/work_pools/{POOL}/workers/filter", {}),
                timeout=90,
                logs=deployment.logs(),
            )
            yield deployment
