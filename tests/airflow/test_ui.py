"""The cairn UI inside Airflow: the plugin (provider metadata -> `airflow plugins`), the UI
mounted in a real `airflow api-server`, and the "cairn version" link of a task instance
leading to the page of the version it logged or used."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from dagruns import load_dag, states, xcom

SHARDED = "airflow_sharded_dataset.py"
DAY = datetime(2024, 3, 1, tzinfo=timezone.utc)
LINK_KEY = "_link_CairnVersionLink"
#: Airflow loads plugins named in provider metadata only when it discovers providers eagerly
EAGER = {"AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_plugin_comes_from_the_provider_metadata_and_is_listed():
    from cairn_airflow import get_provider_info

    info = get_provider_info()
    plugin_class = "cairn_airflow.plugins.CairnPlugin"
    assert info["plugins"] == [{"name": "cairn", "plugin-class": plugin_class}]
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "--output", "json"],
        env={**os.environ, **EAGER},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [plugin] = [p for p in json.loads(done.stdout) if p["name"] == "cairn"]
    assert plugin["fastapi_apps"] == [
        {"app": "fastapi.applications.FastAPI", "url_prefix": "/cairn", "name": "cairn"}
    ]
    [view] = plugin["external_views"]
    assert (view["name"], view["href"], view["url_route"], view["destination"]) == (
        "Artifacts",
        "cairn/projects",
        "cairn",
        "nav",
    )


def _run_producer_and_consumer() -> tuple[Any, Any]:
    producer = load_dag(SHARDED, "cairn_sharded_producer").test(logical_date=DAY)
    assert producer.state == "success", states(producer)
    consumer = load_dag(SHARDED, "cairn_sharded_consumer").test(logical_date=DAY)
    assert consumer.state == "success", states(consumer)
    return producer, consumer


def test_tasks_link_to_the_version_they_logged_or_used(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.internal:8080/")
    producer, consumer = _run_producer_and_consumer()
    page = "http://airflow.internal:8080/cairn/projects/demo/artifacts/events/v0"
    assert xcom(producer, "commit", key=LINK_KEY) == page
    assert xcom(consumer, "fetch", key=LINK_KEY) == page


def test_a_standalone_ui_named_by_the_connection_gets_the_links(monkeypatch):
    conn = {"conn_type": "cairn", "extra": {"ui_url": "http://cairn-ui.internal:8765/"}}
    monkeypatch.setenv("AIRFLOW_CONN_CAIRN_DEFAULT", json.dumps(conn))
    producer = load_dag(SHARDED, "cairn_sharded_producer").test(logical_date=DAY)
    assert xcom(producer, "commit", key=LINK_KEY) == (
        "http://cairn-ui.internal:8765/projects/demo/artifacts/events/v0"
    )


class ApiServer:
    """`airflow api-server` on 127.0.0.1 over this session's metadata DB (SQLite)."""

    def __init__(self, port: int, env: dict[str, str], log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server"]
            + ["--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log = log

    def wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with _http().open(f"{self.url}/api/v2/monitor/health", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(self.log.read_text()[-3000:]) from None
                time.sleep(0.5)

    def token(self, password: str) -> str:
        body = json.dumps({"username": "admin", "password": password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", body, {"Content-Type": "application/json"}
        )
        with _http().open(request, timeout=30) as r:
            return str(json.load(r)["access_token"])

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"{self.url}{path}", headers=headers)
        try:
            with _http().open(request, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _http() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@pytest.fixture
def api_server(tmp_path, monkeypatch) -> Any:
    port = _free_port()
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{port}")
    env = {
        **os.environ,
        **EAGER,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(40),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
    }
    server = ApiServer(port, env, tmp_path / "api-server.log")
    yield server
    server.stop()


def test_the_ui_in_a_real_api_server_and_a_task_link_to_its_page(api_server, tmp_path):
    from browser import VIEWPORT, Console, chromium, screenshots

    producer, consumer = _run_producer_and_consumer()
    api_server.wait()
    # without a session, pages send the browser to Airflow's login; the API says 401
    status, _ = api_server.get("/cairn/projects")
    assert status == 307
    assert api_server.get("/cairn/api/projects")[0] == 401
    password = json.loads((tmp_path / "passwords.json").read_text())["admin"]
    token = api_server.token(password)
    status, body = api_server.get("/cairn/api/projects/demo/artifacts/events", token)
    assert status == 200 and json.loads(body)["versions"][0]["ref"] == "demo/events:v0"
    # from the cairn run of a task instance back to that task instance in Airflow
    status, body = api_server.get("/cairn/api/projects/demo/artifacts/events/v0", token)
    logger = json.loads(body)["logged_by"]
    status, body = api_server.get(f"/cairn/api/projects/demo/runs/{logger['id']}", token)
    [back] = json.loads(body)["external"]
    assert (
        back["url"]
        == f"/dags/cairn_sharded_producer/runs/{quote(producer.run_id, safe='')}/tasks/commit"
    )
    # the task instance's extra link, as Airflow's UI asks for it
    run = producer.run_id
    status, body = api_server.get(
        f"/api/v2/dags/cairn_sharded_producer/dagRuns/{run}/taskInstances/commit/links", token
    )
    assert status == 200, body
    link = json.loads(body)["extra_links"]["cairn version"]
    assert link == f"{api_server.url}/cairn/projects/demo/artifacts/events/v0"

    shots = screenshots(tmp_path / "screenshots")
    with chromium() as browser:
        page = browser.new_context(viewport=VIEWPORT).new_page()
        console = Console(page)
        page.goto(link)  # not signed in yet: Airflow's login, then back to the link
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.keyboard.press("Enter")
        page.wait_for_url(link)
        assert page.locator("h1").inner_text().split()[:2] == ["events", "v0"]
        page.screenshot(path=shots / "airflow-version.png", full_page=True)
        # the task instance page of Airflow's UI shows the link
        page.goto(f"{api_server.url}/dags/cairn_sharded_producer/runs/{run}/tasks/commit")
        page.get_by_text("Details", exact=True).click()  # "Extra Links" heads that tab
        button = page.get_by_role("link", name="cairn version")
        button.wait_for(timeout=30_000)
        assert button.get_attribute("href") == link
        page.screenshot(path=shots / "airflow-task.png")
        if button.get_attribute("target") == "_blank":
            with page.context.expect_page() as opened:
                button.click()
            version_page = opened.value
        else:
            button.click()
            version_page = page
        version_page.wait_for_url(link)
        assert version_page.locator("h1").inner_text().split()[:2] == ["events", "v0"]
        # the navigation entry shows the UI inside Airflow's own page
        page.goto(f"{api_server.url}/")
        page.get_by_role("button", name="Browse").click()
        page.get_by_role("menuitem", name="Artifacts").click()
        frame = page.frame_locator("iframe")
        frame.get_by_role("link", name="demo", exact=True).click()
        frame.get_by_role("link", name="events", exact=True).wait_for()
        page.screenshot(path=shots / "airflow-plugin.png")
        console.expect_clean()
