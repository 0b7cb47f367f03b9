"""Event plugins: the example webhook (dags_examples/cairn_webhook.py), installed as a
`cairn.events` entry point, posts the changes the real `cairn` CLI makes to an HTTP server
on 127.0.0.1, with no code changed; a plugin that cannot load never stops a write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import write

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"


class Hook:
    """An HTTP server receiving JSON POSTs, as a webhook endpoint would."""

    def __init__(self, status: int = 204):
        self.received: list[tuple[str, dict[str, Any]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/json"
                hook.received.append((self.headers["X-Cairn-Event"], json.loads(body)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/cairn"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def install_plugin(site: Path, name: str, target: str) -> None:
    """Install an entry point the way pip does: a dist-info folder on the path."""
    info = site / f"cairn_{name}_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: cairn-{name}-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(f"[cairn.events]\n{name} = {target}\n")


def cli(home: Path, site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    environ |= {
        "CAIRN_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLES)]),
        **env,
    }
    for var in ("CAIRN_CATALOG", "CAIRN_STORE", "CAIRN_EVENT_PLUGINS"):
        if var not in env:
            environ.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "cairn", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_webhook_plugin_posts_every_change_the_cli_makes(tmp_path, home, hook):
    site = tmp_path / "site"
    install_plugin(site, "webhook", "cairn_webhook:setup")
    data = tmp_path / "data"
    write(data / "a.txt", "alpha")

    def run(*args: str) -> None:
        done = cli(home, site, *args, CAIRN_WEBHOOK_URL=hook.url)
        assert done.returncode == 0, done.stderr

    run("put", str(data), "-n", "demo/model", "-t", "model", "-m", '{"acc": 0.8}')
    write(data / "b.txt", "bravo")
    run("put", str(data), "-n", "demo/model", "-t", "model")
    run("alias", "add", "demo/model:v1", "production")
    run("alias", "rm", "demo/model:v1", "production")
    run("prune", "demo/model", "--keep", "1")
    got = [(name, b["ref"], b["alias"], b["previous"]) for name, b in hook.received]
    assert got == [
        ("cairn.version.committed", "demo/model:v0", None, None),
        ("cairn.alias.moved", "demo/model:v0", "latest", None),
        ("cairn.version.committed", "demo/model:v1", None, None),
        ("cairn.alias.moved", "demo/model:v1", "latest", "demo/model:v0"),
        ("cairn.alias.moved", "demo/model:v1", "production", None),
        ("cairn.alias.removed", "demo/model:v1", "production", None),
        ("cairn.version.deleted", "demo/model:v0", None, None),
    ]
    first = hook.received[0][1]
    assert first["event"] == "cairn.version.committed" and first["metadata"] == {"acc": 0.8}
    assert first["digest"] and first["version"] == "v0" and first["type"] == "model"

    # narrowed to one event; the other commands post nothing
    hook.received.clear()
    for args in (
        ("alias", "add", "demo/model:v1", "production"),
        ("rm", "demo/model:v1", "--delete-aliases", "--force"),  # production is protected
    ):
        done = cli(
            home,
            site,
            *args,
            CAIRN_WEBHOOK_URL=hook.url,
            CAIRN_WEBHOOK_EVENTS="cairn.version.deleted",
        )
        assert done.returncode == 0, done.stderr
    assert [(n, b["ref"]) for n, b in hook.received] == [("cairn.version.deleted", "demo/model:v1")]


def test_a_webhook_that_is_down_is_logged_and_the_change_stands(tmp_path, home, hook):
    site = tmp_path / "site"
    install_plugin(site, "webhook", "cairn_webhook:setup")
    url = hook.url
    hook.close()  # nobody answers there now
    write(tmp_path / "data" / "a.txt", "alpha")
    done = cli(
        home,
        site,
        "put",
        str(tmp_path / "data"),
        "-n",
        "demo/x",
        "-t",
        "dataset",
        CAIRN_WEBHOOK_URL=url,
    )
    assert done.returncode == 0 and done.stdout.strip() == "demo/x:v0", done.stderr
    assert "a listener of cairn.version.committed" in done.stderr
    assert "the change stands" in done.stderr
    shown = cli(home, site, "show", "demo/x:latest", "--json")
    assert json.loads(shown.stdout)["version"] == "v0"


def test_plugins_that_fail_to_load_or_are_switched_off_do_not_stop_writes(tmp_path, home, hook):
    site = tmp_path / "site"
    install_plugin(site, "webhook", "cairn_webhook:setup")
    install_plugin(site, "broken", "no_such_module_here:setup")
    (site / "raising.py").write_text("def setup(repo):\n    raise RuntimeError('bad plugin')\n")
    install_plugin(site, "raising", "raising:setup")
    write(tmp_path / "data" / "a.txt", "alpha")
    done = cli(
        home,
        site,
        "put",
        str(tmp_path / "data"),
        "-n",
        "demo/x",
        "-t",
        "dataset",
        CAIRN_WEBHOOK_URL=hook.url,
    )
    assert done.returncode == 0, done.stderr
    assert "plugin raising failed to subscribe" in done.stderr
    assert "no_such_module_here" not in done.stderr  # not installed: skipped quietly
    assert [n for n, _ in hook.received] == ["cairn.version.committed", "cairn.alias.moved"]

    hook.received.clear()
    write(tmp_path / "data" / "b.txt", "bravo")
    for setting in ("none", "broken,raising"):
        done = cli(
            home,
            site,
            "alias",
            "add",
            "demo/x:v0",
            f"a{len(setting)}",
            CAIRN_WEBHOOK_URL=hook.url,
            CAIRN_EVENT_PLUGINS=setting,
        )
        assert done.returncode == 0, done.stderr
    assert hook.received == []


def test_no_plugins_wanted_looks_up_no_installed_plugin(monkeypatch):
    """`CAIRN_EVENT_PLUGINS=none` spares every process the scan of installed packages'
    entry points (tens of milliseconds with many packages)."""
    from cairn.engine import events

    def scanned():
        raise AssertionError("entry points scanned")

    monkeypatch.setattr(events, "_installed", scanned)
    assert events._enabled("none") == [] and events._enabled(" , none") == []
    with pytest.raises(AssertionError):
        events._enabled("webhook")
