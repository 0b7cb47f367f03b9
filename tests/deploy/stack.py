"""What both deployments share: their virtualenvs, a JSON client for their REST APIs,
waiting with a deadline, and failure messages that name the log files to read.

Each orchestrator runs from its own virtualenv (scripts/setup makes .venv-airflow and
.venv-prefect): this test process never imports Airflow or Prefect, it talks to them over
HTTP like any client, and reads cairn's catalog and store directly to check the result.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# every server here is on the loopback: never go through a proxy from the environment
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def service_environ(drop: tuple[str, ...], **values: str) -> dict[str, str]:
    """This process's environment without the variables starting with `drop` (the
    orchestrator's and cairn's own, which the deployment sets), plus `values`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(drop)}, **values}


def database_url(url: str, driver: str) -> str:
    """A SQLAlchemy URL with another driver, e.g. postgresql+asyncpg, password kept."""
    return make_url(url).set(drivername=driver).render_as_string(hide_password=False)


def venv_bin(venv: str, script: str) -> Path:
    """A console script of one of the project's virtualenvs; fail clearly when missing."""
    path = ROOT / venv / "bin" / script
    if not path.exists():
        pytest.fail(f"{path} not found: run scripts/setup first", pytrace=False)
    return path


class DeployError(AssertionError):
    """A deployment did not do what the test waited for; the message names the logs."""


def describe_logs(logs: Iterable[Path]) -> str:
    return "logs: " + ", ".join(str(p) for p in logs)


def wait_for(
    what: str,
    check: Callable[[], T | None],
    *,
    timeout: float,
    logs: Iterable[Path],
    interval: float = 0.5,
) -> T:
    """Poll `check` until it returns something other than None (or False); fail after
    `timeout` seconds with `what` and the logs to read."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise DeployError(
                f"timed out after {timeout:.0f} s waiting for {what}; {describe_logs(logs)}"
            )
        time.sleep(interval)


class JsonApi:
    """A tiny JSON-over-HTTP client; `headers` is consulted on every request."""

    def __init__(self, base: str, headers: Callable[[], dict[str, str]] | None = None):
        self.base = base.rstrip("/")
        self._headers = headers or dict

    def call(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in self._headers().items():
            req.add_header(k, v)
        try:
            with _http.open(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:2000]
            raise DeployError(f"{method} {self.base}{path}: HTTP {e.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def answers_ok(self, path: str) -> bool:
        """True when GET `path` succeeds (2xx)."""
        try:
            self.call("GET", path, timeout=5)
        except (DeployError, OSError):
            return False
        return True

    def answers(self, path: str) -> bool:
        try:
            with _http.open(self.base + path, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
