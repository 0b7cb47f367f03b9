"""The maintenance example flow (dags_examples/prefect_maintenance.py), run for real
against the session's Prefect server: retain then gc, a dry run first, and its schedule."""

from __future__ import annotations

import os
import subprocess
import sys

import prefect_maintenance as maintenance
from prefect.client.orchestration import get_client

from cairn import Artifact


def _log(repo, content: str, aliases=()) -> None:
    art = Artifact("clicks", "dataset")
    with art.new_file("a.csv") as f:
        f.write(content)
    repo.log_artifact(art, project="demo", aliases=list(aliases))


def test_maintenance_flow_applies_retention_then_frees_the_bytes(repo):
    for i in range(5):
        _log(repo, f"day {i}\n" * 100, aliases=["production"] if i == 0 else [])
    repo.set_retention("demo", keep_last=2)

    dry = maintenance.maintenance(dry_run=True)
    assert dry["retain"]["deleted"] == ["demo/clicks:v1", "demo/clicks:v2"]
    assert dry["gc"]["bytes_freed"] == 0
    assert len(repo.versions("demo/clicks")) == 5

    state = maintenance.maintenance(grace="0", return_state=True)
    assert state.is_completed()
    done = state.result()
    assert done["retain"]["deleted"] == ["demo/clicks:v1", "demo/clicks:v2"]
    assert done["gc"]["bytes_freed"] == done["retain"]["gc_bytes"] > 0
    assert [v.version for v in repo.versions("demo/clicks")] == ["v4", "v3", "v0"]
    assert repo.artifact("demo/clicks:production").get_path("a.csv").read_text().startswith("day 0")
    assert repo.verify().ok

    # each step published its report where Prefect shows it
    async def reports() -> dict[str, str]:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as client:
            found = await client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["cairn-retain", "cairn-gc"])
                )
            )
        return {a.key: str(a.data) for a in found}

    import asyncio

    published = asyncio.run(reports())
    assert "deleted demo/clicks:v1" in published["cairn-retain"]
    assert "freed" in published["cairn-gc"]


def test_maintenance_flow_is_served_nightly():
    deployment = maintenance.maintenance.to_deployment(name="nightly", cron=maintenance.NIGHTLY)
    [schedule] = deployment.schedules
    assert schedule.schedule.cron == "0 3 * * *"
    assert deployment.parameters == {}


def test_maintenance_script_runs_on_its_own(prefect_server, cairn_home, repo):
    _log(repo, "old")
    _log(repo, "new")
    repo.set_retention("demo", keep_last=1)
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "CAIRN_HOME": str(cairn_home)}
    script = [sys.executable, str(maintenance.__file__)]
    dry = subprocess.run(
        [*script, "--dry-run"], env=env, capture_output=True, text=True, timeout=300
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "would delete demo/clicks:v0" in dry.stdout + dry.stderr
    assert len(repo.versions("demo/clicks")) == 2
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [v.version for v in repo.versions("demo/clicks")] == ["v1"]
