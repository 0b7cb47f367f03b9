"""Operators under failure: retried mapped writers, and bad input failing with cairn's words."""

from __future__ import annotations

import re

import pytest
from dagruns import load_dag, states

from cairn import Artifact, CairnError

RETRY = "airflow_test_retry.py"
ERRORS = "airflow_test_errors.py"
MISSING_FILE = "/nonexistent/cairn-test/data.csv"  # as in dags/airflow_test_errors.py


def test_retried_mapped_upsert_replaces_its_part(repo):
    dr = load_dag(RETRY, "cairn_test_retry_operator").test()

    assert dr.state == "success", states(dr)
    assert states(dr)["upsert[1]"] == ("success", 2)  # failed once, then succeeded
    assert states(dr)["upsert[0]"] == ("success", 1)
    v = repo.artifact("demo/shards:latest")
    assert v.version == "v0"
    contents = {e.path: v.get_path(e.path).read_text() for e in v.files()}
    assert contents == {
        "shard-0.txt": "shard 0, first try\n",
        "shard-1.txt": "shard 1, second try: longer content\n",
        "shard-2.txt": "shard 2, first try\n",
    }
    assert {e.path: e.size for e in v.files()}["shard-1.txt"] == len(contents["shard-1.txt"])
    # one cairn run per task instance, whatever the number of tries
    assert sorted(r.name for r in v.contributors()) == [
        f"cairn_test_retry_operator.upsert[{i}]" for i in range(3)
    ]


def test_retried_taskflow_upsert_replaces_its_part(repo):
    dr = load_dag(RETRY, "cairn_test_retry_taskflow").test()

    assert dr.state == "success", states(dr)
    assert states(dr)["write_and_upsert[0]"] == ("success", 2)
    v = repo.artifact("demo/tf_shards:latest")
    contents = {e.path: v.get_path(e.path).read_text() for e in v.files()}
    assert contents == {"shard-0.txt": "shard 0, try 2\n", "shard-1.txt": "shard 1, try 1\n"}
    assert len(v.contributors()) == 2


def test_bad_input_fails_the_task_with_the_core_message(repo, capfd):
    dr = load_dag(ERRORS, "cairn_test_errors").test()
    out = capfd.readouterr()
    log = out.out + out.err

    assert dr.state == "failed"
    # cairn errors are about the data: the tasks fail at once, their retries unspent
    assert set(states(dr).values()) == {("failed", 1)}
    expected = [
        ("NotFound", core_message(lambda: repo.artifact("demo/nothing:v7"))),
        ("InvalidName", core_message(lambda: repo.artifact("demo/../etc:v1"))),
        ("NotFound", core_message(lambda: Artifact("x").add_file(MISSING_FILE))),
        (
            "CairnError",
            core_message(
                lambda: repo.finish_artifact(
                    Artifact("never_upserted"),
                    project="demo",
                    distributed_id=f"airflow:cairn_test_errors:{dr.run_id}",
                )
            ),
        ),
    ]
    for kind, message in expected:
        line = f"AirflowFailException: {kind}: {message}"
        assert line in log, f"{line!r} not in the task logs"
    # the traceback ends in the operator: no frames from inside the core
    assert not re.search(r'File "[^"]*/cairn/(repository|artifact|distributed|names)\.py"', log)
    assert "During handling of the above exception" not in log


def core_message(call) -> str:
    with pytest.raises(CairnError) as caught:
        call()
    return str(caught.value)
