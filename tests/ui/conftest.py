"""Fixtures for the UI: the sample repository (sample.py) on each catalog, the app over it,
and a real `cairn ui` server for the browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import servers
from fastapi.testclient import TestClient
from sample import build

from cairn import Repository
from cairn.ui import create_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def sample(request, tmp_path_factory, postgres_url_lazy) -> Iterator[dict[str, Any]]:
    """The sample repository, built once per module and catalog: {"repo", "versions", "home"}."""
    home = tmp_path_factory.mktemp("ui-home")
    with _catalog(request.param, home, postgres_url_lazy) as url:
        repo = Repository.open(catalog=url, home=str(home))
        versions = build(repo)
        yield {"repo": repo, "versions": versions, "home": home, "catalog": url}
        repo.close()


@pytest.fixture(scope="module")
def postgres_url_lazy(request):
    """The session's PostgreSQL server, started only when a test asks for it."""
    return lambda: request.getfixturevalue("postgres_url")


class _catalog:
    def __init__(self, kind: str, home: Path, postgres: Any):
        self.kind, self.home, self.postgres = kind, home, postgres
        self._db: Any = None

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.home}/catalog.db"
        self._db = servers.fresh_database(self.postgres())
        return self._db.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._db is not None:
            self._db.__exit__(*exc)


@pytest.fixture(scope="module")
def client(sample) -> TestClient:
    return TestClient(create_app(sample["repo"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with opener.open(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_ui(home: Path, port: int, *extra: str, catalog: str | None = None) -> subprocess.Popen:
    """`cairn ui` on a repository, as a user starts it; the caller stops it."""
    cmd = [sys.executable, "-m", "cairn", "--home", str(home)]
    if catalog:
        cmd += ["--catalog", catalog]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    proc = subprocess.Popen(
        [*cmd, "ui", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/projects")
    except OSError:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"cairn ui did not start: {err}") from None
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
