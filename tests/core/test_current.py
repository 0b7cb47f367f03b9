"""`CurrentRuns`: the registry behind cairn_airflow's and cairn_prefect's `current_run()`."""

from __future__ import annotations

import pytest

from cairn import CairnError
from cairn.current import CurrentRuns


def test_a_run_is_handed_out_until_its_task_ends(repo):
    runs = CurrentRuns("task")
    closed: list[str] = []
    assert runs.get("r1", project=None, config=None) is None
    run = runs.add(
        repo.run(project="p", run_id="r1", config={"lr": 0.1}), lambda: closed.append("r1")
    )
    assert runs.get("r1", project=None, config=None) is run
    assert runs.get("r1", project="p", config={"seed": 3}) is run
    assert run.config == {"lr": 0.1, "seed": 3} and run.refresh().config == run.config
    with pytest.raises(CairnError, match="this task's cairn run is in project p, not q"):
        runs.get("r1", project="q", config=None)

    runs.finish("r1", "failed")
    assert (run.refresh().state, closed) == ("failed", ["r1"])
    assert runs.get("r1", project=None, config=None) is None
    runs.finish("r1", "finished")  # a second end (another callback): nothing happens
    assert (run.refresh().state, closed) == ("failed", ["r1"])


def test_a_run_the_code_finished_keeps_its_state(repo):
    runs = CurrentRuns("task run")
    closed = []
    with runs.add(repo.run(project="p", run_id="r2"), lambda: closed.append(1)) as run:
        pass  # `with current_run() as run:` finishes it
    runs.finish("r2", "failed")
    assert run.refresh().state == "finished" and closed == [1]
    runs.finish("unknown", "finished")  # not this process's: left alone
