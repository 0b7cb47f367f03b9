"""cairn inside a real Prefect 3 deployment: a Prefect server (on PostgreSQL), a process
work pool and its worker as separate processes, and cairn on a PostgreSQL catalog and an
S3 store (moto), configured through a `CairnRepository` block.

The flow (flows/cairn_deploy_flows.py) upserts one part per mapped task run, each task
run in a process of a process pool, then finishes the version and downloads it. The test
kills the process of one task run in the middle of its upload.

Prefect retries a task inside the process that runs it, so a task run whose process is
killed is never retried on its own: the pool breaks (Python's ProcessPoolExecutor stops
every process of a pool one of whose processes died), the flow run fails its attempt and
its retry runs every part again, under the same flow run, hence the same distributed id.
The version must come out whole all the same: 32 parts, each written once (by the retry),
every byte verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from backend import CairnBackend
from midupload import MidUpload
from parts import PART_FILES, checked_out, write_parts
from prefect_stack import PrefectDeployment, prefect_deployment
from stack import describe_logs, wait_for

from cairn import Repository

FLOWS = Path(__file__).parent / "flows"
PARTS = 32
VICTIM = 13  # the part whose task run's process is killed mid-upload


@pytest.fixture(scope="module")
def prefect(
    postgres_url: str, cairn_backend: CairnBackend, deploy_dir: Path, deploy_logs: Path
) -> Iterator[PrefectDeployment]:
    options = cairn_backend.storage_options(through_proxy=True)
    block = {
        "catalog": cairn_backend.catalog,
        "store": cairn_backend.store,
        "storage_options": {"client_kwargs": options["client_kwargs"]},
        "storage_secrets": {"key": options["key"], "secret": options["secret"]},
    }
    env = {"CAIRN_HOME": str(deploy_dir / "prefect-cairn-home"), **cairn_backend.s3.environ}
    with prefect_deployment(
        deploy_dir / "prefect",
        deploy_logs / "prefect",
        postgres_url,
        flows=FLOWS,
        block=block,
        env=env,
    ) as deployment:
        yield deployment


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no parent in /proc/{pid}/status")


def test_a_task_runs_process_killed_mid_upload_and_the_flow_retry_make_a_whole_version(
    prefect: PrefectDeployment, cairn_backend: CairnBackend, repo: Repository, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    expected = write_parts(folder, PARTS, seed="prefect task killed mid-upload")
    victim = [expected[f"part-{VICTIM:02d}/{name}"] for name in PART_FILES]
    with MidUpload(cairn_backend.proxy, victim) as upload:
        flow_run_id = prefect.run({"folder": str(folder)})
        wait_for(
            f"part {VICTIM} to store one object and send the next",
            upload.caught,
            timeout=180,
            logs=prefect.logs(),
        )
        (sender,) = upload.senders()
        flow_process = prefect.flow_process(flow_run_id)
        # a process of the flow run's pool, not the flow run's own process
        assert sender != flow_process and parent_of(sender) == flow_process
        upload.kill(sender)
        stored = len(upload.first_puts())
    run = prefect.wait_for_flow_run(flow_run_id)
    assert run["run_count"] == 2, describe_logs(prefect.logs())

    (v,) = [v for v in repo.versions("deploy/parts") if v.distributed_id == flow_run_id]
    assert v.state == "COMMITTED"
    assert sorted(e.path for e in v.files()) == sorted(expected)
    report = repo.verify(v.ref)
    assert report.ok and report.objects_checked == len(expected), str(report)
    assert checked_out(v.download(tmp_path / "out")) == expected
    assert checked_out(tmp_path / "checkout") == expected  # the flow's use_artifact
    assert len(upload.first_puts()) == stored  # the retry sent only what had not arrived

    # lineage: each part written once, by the retry's task runs; the killed attempt's
    # task runs (the victim's among them) left nothing behind
    task_runs = {t["id"]: t for t in prefect.task_runs(flow_run_id)}
    upserts = [t for t in task_runs.values() if t["name"].startswith("upsert_artifact")]
    first = [t for t in upserts if t["flow_run_run_count"] == 1]
    assert any(t["state_type"] != "COMPLETED" for t in first)
    writers = [task_runs[r.attributes["task_run_id"]] for r in v.contributors()]
    assert len(writers) == PARTS, describe_logs(prefect.logs())
    assert all(t["name"].startswith("upsert_artifact") for t in writers)
    assert {(t["flow_run_run_count"], t["state_type"]) for t in writers} == {(2, "COMPLETED")}
    finisher = v.logged_by()
    assert finisher is not None
    (used_by,) = v.used_by()
    for cairn_run, task in ((finisher, "finish_artifact"), (used_by, "use_artifact")):
        t = task_runs[cairn_run.attributes["task_run_id"]]
        assert (t["name"].rpartition("-")[0], t["flow_run_run_count"]) == (task, 2)
