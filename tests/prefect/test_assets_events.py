"""Prefect assets and events from the cairn tasks, read back through Prefect's client.

A task that commits a version materializes `cairn://project/name` (name, description,
owners and the version in the payload); `use_artifact` makes it upstream of what the flow
logs next, so the asset graph joins flows through cairn versions. Every cairn change is
also a Prefect event of cairn's name, with the version as its resource and the asset as a
related resource, for triggers and automations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, task
from prefect_api import events_named, wait_for_events

from cairn import Repository
from cairn_prefect import asset_key, current_run, finish_artifact, log_artifact, upsert_artifact
from cairn_prefect import events as prefect_events


@flow
def produce(path: str, aliases: list[str] | None = None) -> str:
    return log_artifact(
        path,
        name="raw",
        project="demo",
        description="Raw sessions",
        metadata={"owners": ["data-team@example.com"]},
        aliases=aliases or [],
    )


@task
def count_lines(folder: str, out: str) -> str:
    total = sum(len(p.read_text().splitlines()) for p in Path(folder).rglob("*.txt"))
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "counts.json").write_text(json.dumps({"lines": total}))
    return out


@flow
def consume(root: str, out: str) -> str:
    from cairn_prefect import use_artifact

    folder = use_artifact("demo/raw:latest", root=root)
    return log_artifact(count_lines(folder, out), name="features", project="demo")


def _flow_run(state) -> str:
    return str(state.state_details.flow_run_id)


def _materialized(flow_run_id: str, key: str) -> dict:
    (event,) = wait_for_events(
        "prefect.asset.materialization.succeeded", resource_id=key, flow_run_id=flow_run_id
    )
    return event


def test_the_tasks_materialize_and_reference_cairn_assets_between_flows(repo, data_dir, tmp_path):
    (data_dir / "a.txt").write_text("one\ntwo\n")
    produced = produce(str(data_dir), return_state=True)
    raw = repo.artifact(produced.result())

    event = _materialized(_flow_run(produced), "cairn://demo/raw")
    resource = event.resource
    assert resource["prefect.resource.name"] == "demo/raw"
    assert resource["prefect.asset.description"] == "Raw sessions"
    assert json.loads(resource["prefect.asset.owners"]) == ["data-team@example.com"]
    assert event.payload == {
        "ref": "demo/raw:v0",
        "version": "v0",
        "digest": raw.digest,
        "aliases": ["latest"],
        "files": 1,
        "bytes": raw.size,
    }
    by = [r for r in event.related if r.role == "asset-materialized-by"]
    assert [r.id for r in by] == ["cairn"]

    consumed = consume(str(tmp_path / "checkout"), str(tmp_path / "out"), return_state=True)
    features = repo.artifact(consumed.result())
    event = _materialized(_flow_run(consumed), "cairn://demo/features")
    assert event.payload["ref"] == features.ref == "demo/features:v0"
    upstream = [r.id for r in event.related if r.role == "asset"]
    assert upstream == ["cairn://demo/raw"]  # through the task that read the checkout
    (ref,) = wait_for_events(
        "prefect.asset.referenced", resource_id="cairn://demo/raw", flow_run_id=_flow_run(consumed)
    )
    assert ref.resource["prefect.resource.name"] == "demo/raw"


def test_commits_and_alias_moves_are_prefect_events_with_the_asset_related(repo, data_dir):
    (data_dir / "a.txt").write_text("alpha")
    state = produce(str(data_dir), ["production"], return_state=True)
    v = repo.artifact(state.result())
    flow_run_id = _flow_run(state)

    (committed,) = wait_for_events(
        "cairn.version.committed", resource_id="cairn.version.demo/raw:v0", flow_run_id=flow_run_id
    )
    assert committed.resource["cairn.ref"] == "demo/raw:v0"
    assert committed.resource["cairn.digest"] == v.digest
    assert committed.payload["digest"] == v.digest
    assert committed.payload["aliases"] == ["latest", "production"]
    assert committed.payload["run"] == v.logged_by().id
    assets = [r for r in committed.related if r.role == "asset"]
    assert [(r.id, r["prefect.resource.name"]) for r in assets] == [
        ("cairn://demo/raw", "demo/raw")
    ]
    moved = wait_for_events(
        "cairn.alias.moved",
        resource_id="cairn.version.demo/raw:v0",
        flow_run_id=flow_run_id,
        count=2,
    )
    assert sorted(e.resource["cairn.alias"] for e in moved) == ["latest", "production"]
    production = next(e for e in moved if e.resource["cairn.alias"] == "production")
    assert production.payload["ref"] == "demo/raw:v0" and production.payload["previous"] is None
    # the task run that moved it is related too (Prefect adds the run context)
    roles = {r.role for r in production.related}
    assert {"asset", "flow-run", "task-run"} <= roles


def test_a_change_made_outside_any_flow_is_a_prefect_event_through_the_plugin(cairn_home, data_dir):
    """The `prefect` plugin of the `cairn.events` entry points: a script (or the CLI) in a
    process with a Prefect API moves `production`, and Prefect hears of it."""
    (data_dir / "m.bin").write_bytes(b"weights")
    with Repository.open() as repo:
        from cairn import Artifact

        v = repo.log_artifact(
            Artifact("model", type="model").add_dir(str(data_dir)), project="demo"
        )
        v.aliases.append("production")
        v.save()
    (moved,) = [
        e
        for e in wait_for_events(
            "cairn.alias.moved", resource_id="cairn.version.demo/model:v0", count=2
        )
        if e.resource["cairn.alias"] == "production"
    ]
    assert moved.payload["digest"] == v.digest and moved.payload["run"] is None


def test_an_alias_moved_with_the_cli_reaches_prefect(cairn_home, data_dir, prefect_server):
    """`cairn alias add ... production` in a shell where PREFECT_API_URL is set: the event
    a deployment trigger waits for, sent before the command exits."""
    (data_dir / "m.bin").write_bytes(b"cli weights")
    env = {**os.environ, "CAIRN_HOME": str(cairn_home), "PREFECT_API_URL": prefect_server}
    env.pop("CAIRN_EVENT_PLUGINS", None)
    for args in (
        ["put", str(data_dir), "-n", "demo/cli", "-t", "model"],
        ["alias", "add", "demo/cli:v0", "production"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "cairn", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
    with Repository.open() as repo:
        v = repo.artifact("demo/cli:production")
    (committed,) = wait_for_events(
        "cairn.version.committed", resource_id="cairn.version.demo/cli:v0"
    )
    assert committed.payload["digest"] == v.digest
    moved = wait_for_events("cairn.alias.moved", resource_id="cairn.version.demo/cli:v0", count=2)
    assert [e.resource["cairn.alias"] for e in moved] == ["latest", "production"]
    assert moved[1].related[0].id == "cairn://demo/cli"


def test_switching_the_plugins_off_sends_nothing_from_outside_flows(cairn_home, data_dir):
    (data_dir / "m.bin").write_bytes(b"other weights")
    with Repository.open(plugins=False) as repo:
        from cairn import Artifact

        repo.log_artifact(Artifact("quiet", type="model").add_dir(str(data_dir)), project="demo")
        sub = prefect_events.subscribe(repo)  # explicitly, as the tasks do: once
        assert prefect_events.subscribe(repo) is sub
        v = repo.artifact("demo/quiet:v0")
        v.aliases.append("best")
        v.save()
    names = [
        (e.event, e.resource["cairn.alias"])
        for e in wait_for_events("cairn.alias.moved", resource_id="cairn.version.demo/quiet:v0")
    ]
    assert names == [("cairn.alias.moved", "best")]
    assert events_named("cairn.version.committed", "cairn.version.demo/quiet:v0") == []


@flow
def distributed(folders: list[str]) -> str:
    parts = upsert_artifact.map(folders, name="shards", project="demo")
    return finish_artifact(name="shards", project="demo", parts=parts.result())


@task
def train_by_hand(folder: str) -> str:
    from cairn import Artifact

    run = current_run(project="demo")
    return run.log_artifact(Artifact("hand", type="model").add_dir(folder)).ref


@flow
def by_hand(folder: str) -> str:
    return train_by_hand(folder)


def test_finish_and_current_run_commits_materialize_their_assets(repo, tmp_path):
    folders = []
    for i in range(2):
        folder = tmp_path / f"shard-{i}"
        folder.mkdir()
        (folder / f"s{i}.txt").write_text(str(i))
        folders.append(str(folder))
    state = distributed(folders, return_state=True)
    event = _materialized(_flow_run(state), asset_key("demo", "shards"))
    assert event.payload["ref"] == state.result() == "demo/shards:v0"

    state = by_hand(folders[0], return_state=True)
    event = _materialized(_flow_run(state), "cairn://demo/hand")
    assert event.payload["digest"] == repo.artifact("demo/hand:v0").digest
