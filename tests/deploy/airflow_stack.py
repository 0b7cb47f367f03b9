"""A real Airflow 3 deployment on 127.0.0.1: PostgreSQL metadata database, and the API
server, scheduler and dag-processor as separate processes, with LocalExecutor workers.

    with airflow_deployment(workdir, logs, postgres_url, dags=[...], env={...}) as af:
        run_id = af.trigger("cairn_deploy_parts", conf={...})
        af.wait_for_run("cairn_deploy_parts", run_id)

Every process runs from .venv-airflow in its own process group, logging to a file under
`logs` (task logs under `logs/tasks`); each failure message names them. On exit the
services get SIGTERM, then SIGKILL, with whatever is left of their process groups
(tests/servers.py `running`); task processes, which Airflow puts in groups of their own,
are swept last (processes.py).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
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

STARTUP = 90.0
#: (service, argv after `airflow`) besides the API server
SERVICES = (("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"]))
FINISHED = {"success", "failed"}


class AirflowDeployment:
    """The running deployment: its REST API (as admin), its logs, its environment."""

    def __init__(self, home: Path, logs: Path, url: str):
        self.home = home
        self.log_dir = logs
        self.url = url
        self._token: str | None = None
        self.api = JsonApi(url + "/api/v2", headers=self._auth)

    # -- REST --------------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        if self._token is None:
            generated = self.home / "simple_auth_manager_passwords.json.generated"
            password = json.loads(generated.read_text())["admin"]
            reply = JsonApi(self.url).call(
                "POST", "/auth/token", {"username": "admin", "password": password}
            )
            self._token = reply["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run_id = f"deploy-test-{uuid.uuid4().hex[:8]}"
        self.api.call(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            {"dag_run_id": run_id, "logical_date": None, "conf": conf},
        )
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return run

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 240) -> str:
        """Wait until the DAG run ends; fail (naming the logs) unless it succeeded."""
        state = wait_for(
            f"DAG run {dag_id}/{run_id} to end",
            lambda: (s := self.dag_run(dag_id, run_id)["state"]) in FINISHED and s,
            timeout=timeout,
            logs=self.logs(),
            interval=1.0,
        )
        if state != "success":
            tis = {ti_key(ti): (ti["state"], ti["try_number"]) for ti in self.tasks(dag_id, run_id)}
            raise DeployError(
                f"DAG run {dag_id}/{run_id} ended {state}; task instances {tis}; "
                f"{describe_logs(self.logs())}"
            )
        return str(state)

    def tasks(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run (mapped ones one per map index)."""
        reply = self.api.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=500")
        out: list[dict[str, Any]] = reply["task_instances"]
        return out

    def task(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        ti: dict[str, Any] = self.api.call("GET", path if map_index < 0 else f"{path}/{map_index}")
        return ti

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api.call("GET", path)["value"]

    def logs(self) -> list[Path]:
        """The services' logs and the folder of the task logs."""
        return [*sorted(self.log_dir.glob("*.log")), self.log_dir / "tasks"]


def ti_key(ti: dict[str, Any]) -> str:
    """`task_id` or `task_id[i]`, as cairn's writer ids name mapped task instances."""
    index = ti.get("map_index", -1)
    return ti["task_id"] if index is None or index < 0 else f"{ti['task_id']}[{index}]"


@contextlib.contextmanager
def airflow_deployment(
    workdir: Path,
    logs: Path,
    postgres_url: str,
    *,
    dags: Sequence[Path],
    env: dict[str, str],
    parallelism: int = 8,
) -> Iterator[AirflowDeployment]:
    """Start the deployment with `dags` in its DAGs folder and `env` (connections, ...) in
    the environment of every process; stop it on exit."""
    airflow = str(venv_bin(".venv-airflow", "airflow"))
    home, dags_folder = workdir / "airflow-home", workdir / "dags"
    for d in (home, logs, dags_folder):
        d.mkdir(parents=True, exist_ok=True)
    for dag in dags:
        shutil.copy(dag, dags_folder / dag.name)
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    mark = new_mark()
    with servers.fresh_database(postgres_url) as db:
        environ = service_environ(("AIRFLOW", "CAIRN_"))
        environ |= {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url(db, "postgresql+psycopg2"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs / "tasks"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            **env,
            **mark,
        }
        migrate_log = logs / "db-migrate.log"
        with migrate_log.open("wb") as out:
            done = subprocess.run(
                [airflow, "db", "migrate"],
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=STARTUP,
            )
        if done.returncode:
            raise DeployError(f"airflow db migrate failed; {describe_logs([migrate_log])}")
        deployment = AirflowDeployment(home, logs, url)
        # the scheduler and the dag-processor start while the API server does, and stop
        # before it (they report to it until they are gone)
        with contextlib.ExitStack() as outer, contextlib.ExitStack() as inner:
            outer.callback(sweep, mark)  # last: task processes leave the services' groups
            for name, argv in SERVICES:
                inner.enter_context(
                    servers.running(
                        f"airflow {name}",
                        [airflow, *argv],
                        logs / f"{name}.log",
                        lambda: True,
                        env=environ,
                    )
                )
            api_argv = [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)]
            outer.enter_context(
                servers.running(
                    "airflow api-server",
                    api_argv,
                    logs / "api-server.log",
                    lambda: deployment.api.answers("/monitor/health"),
                    env=environ,
                )
            )
            wait_for(
                "the scheduler and dag-processor to report healthy",
                lambda: _healthy(deployment),
                timeout=STARTUP,
                logs=deployment.logs(),
            )
            yield deployment


def _healthy(deployment: AirflowDeployment) -> bool:
    health = deployment.api.call("GET", "/monitor/health")
    return all(
        (health.get(part) or {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "dag_processor")
    )
