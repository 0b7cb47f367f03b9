"""Fixtures of the deployment tests: one cairn repository (PostgreSQL catalog, moto S3
store behind a fault proxy) that every orchestrator process of the session writes to.

Run with the core virtualenv: `.venv/bin/pytest tests/deploy` (scripts/test does, in its
own stage). The orchestrators run from .venv-airflow and .venv-prefect (scripts/setup);
this process only starts them, drives them over HTTP and checks what cairn recorded.
Failure messages name the log files to read: in $CAIRN_DEPLOY_LOGS if set, else in a
temporary folder kept when a test fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
from backend import CairnBackend
from stores.fault_proxy import FaultProxy

from cairn import Repository


@pytest.fixture(scope="session")
def deploy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the deployments keep their data (homes, caches, flow code)."""
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session")
def deploy_logs(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where every process of the deployments logs: $CAIRN_DEPLOY_LOGS if set (kept), else
    a temporary folder kept when a test failed (pytest's own temporary folders are pruned
    by the next sessions) and removed when all passed."""
    chosen = os.environ.get("CAIRN_DEPLOY_LOGS")
    if chosen:
        logs = Path(chosen).resolve()
        logs.mkdir(parents=True, exist_ok=True)
        yield Path(tempfile.mkdtemp(prefix="session-", dir=logs))
        return
    logs = Path(tempfile.mkdtemp(prefix="cairn-deploy-logs-"))
    yield logs
    if request.session.testsfailed:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:  # shown even with output captured
            reporter.write_line(f"\ntests/deploy: the deployments' logs are kept in {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture(scope="session")
def cairn_backend(
    postgres_url: str, s3_endpoint: servers.S3Endpoint, deploy_dir: Path
) -> Iterator[CairnBackend]:
    with (
        servers.fresh_database(postgres_url) as catalog,
        servers.s3_bucket(s3_endpoint) as bucket,
        FaultProxy(s3_endpoint.endpoint_url) as proxy,
    ):
        backend = CairnBackend(catalog, f"s3://{bucket}/cairn", s3_endpoint, proxy, deploy_dir)
        # set up as an admin would before the workers start: the catalog migrated, the
        # store bound to it
        with backend.open():
            pass
        yield backend


@pytest.fixture
def repo(cairn_backend: CairnBackend) -> Iterator[Repository]:
    with cairn_backend.open() as r:
        yield r
