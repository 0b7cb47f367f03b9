"""A cairn event plugin: POST every change of a repository to a webhook as JSON.

Install it as an entry point of your own package (docs/EVENTS.md), and every cairn
process that has `CAIRN_WEBHOOK_URL` set (the CLI, Airflow tasks, Prefect flows) posts
its changes there, without a line of code changed:

    # pyproject.toml of the package holding this module
    [project.entry-points."cairn.events"]
    webhook = "cairn_webhook:setup"

    CAIRN_WEBHOOK_URL=https://hooks.example.com/cairn cairn alias add demo/model:v3 production

The body is `Event.to_dict()`, e.g. {"event": "cairn.alias.moved", "ref":
"demo/model:v3", "alias": "production", "previous": "demo/model:v2", "digest": ...}.
`CAIRN_WEBHOOK_EVENTS` (comma-separated names) narrows what is sent. The POST happens in
the writing process after the change is committed: a webhook that is down is logged by
cairn and changes nothing (a queue in between is the way to never miss one).
"""

from __future__ import annotations

import json
import os
import urllib.request

from cairn import Event, Repository

TIMEOUT = 5.0  # seconds; the writer waits for the POST


def setup(repo: Repository) -> None:
    """The entry point: subscribe `repo` if a webhook URL is configured."""
    url = os.environ.get("CAIRN_WEBHOOK_URL")
    if not url:
        return
    names = [n.strip() for n in os.environ.get("CAIRN_WEBHOOK_EVENTS", "*").split(",")]
    for name in filter(None, names):
        repo.on(name, lambda event: post(url, event))


def post(url: str, event: Event) -> None:
    """Send one event; an HTTP error raises (cairn logs it: the change stands)."""
    body = json.dumps(event.to_dict(), sort_keys=True).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Cairn-Event", event.event)
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        resp.read()
