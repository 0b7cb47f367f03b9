"""`cairn_prefect.current_run()` in real flow runs: one cairn run per task run (per mapped
task run), grouped by the flow run, kept across retries, finished by Prefect's own hooks;
and the tasks' `config=` / `metrics=`."""

from pathlib import Path

import pytest
from prefect import flow, task
from prefect.runtime import task_run

from cairn import CairnError
from cairn_prefect import current_run, log_artifact


@task(retries=1, retry_delay_seconds=0)
def score(x: int) -> str:
    run = current_run(project="demo", config={"x": x})
    run.log_summary({"score": x * 10, "try": task_run.run_count})
    if x == 2 and task_run.run_count == 1:
        raise RuntimeError("lost the worker")
    return run.id


@task
def double() -> str:
    first = current_run(project="demo")
    second = current_run(config={"extra": True})
    assert second is first
    with current_run(project="demo") as run:
        run.log_summary({"twice": True})
    return run.id


@task
def broken() -> None:
    current_run(project="demo").log_summary({"before": "crash"})
    raise ValueError("bad data")


@task
def elsewhere() -> str:
    current_run(project="demo")
    try:
        current_run(project="other")
    except CairnError as exc:
        return str(exc)
    return "no error"


@flow(name="cairn-current-run")
def sweep(xs: list[int]) -> dict[str, object]:
    ids = [f.result() for f in score.map(xs)]
    top = current_run(project="demo")  # the flow run's own run
    top.log_summary({"flow": True})
    return {
        "ids": ids,
        "double": double(),
        "broken": broken(return_state=True).type.value,
        "elsewhere": elsewhere(),
        "flow": top.id,
    }


def test_current_run_is_the_task_run_run_and_ends_with_it(repo):
    state = sweep([1, 2, 3], return_state=True)
    out = state.result()
    group = str(state.state_details.flow_run_id)

    scores = repo.search_runs("job_type = 'score'", order_by="-summary.score")
    assert [(r.summary, r.config, r.state) for r in scores] == [
        ({"score": 30, "try": 1}, {"x": 3}, "finished"),
        ({"score": 20, "try": 2}, {"x": 2}, "finished"),  # the retry kept its run
        ({"score": 10, "try": 1}, {"x": 1}, "finished"),
    ]
    assert {r.group for r in scores} == {group} and {r.kind for r in scores} == {"prefect"}
    assert sorted(out["ids"]) == sorted(r.id for r in scores)
    [best] = repo.search_runs(
        "group = :g AND job_type = 'score'", params={"g": group}, order_by="-summary.score", limit=1
    )
    assert best.config == {"x": 3}

    [two] = repo.search_runs("job_type = 'double'")
    assert (two.id, two.summary, two.config, two.state) == (
        out["double"],
        {"twice": True},
        {"extra": True},
        "finished",
    )
    [bad] = repo.search_runs("job_type = 'broken'")
    assert out["broken"] == "FAILED" and (bad.state, bad.summary) == ("failed", {"before": "crash"})
    assert "in project demo, not other" in out["elsewhere"]
    [top] = repo.search_runs("job_type = 'cairn-current-run'")
    assert (top.id, top.summary, top.group, top.state) == (
        out["flow"],
        {"flow": True},
        group,
        "finished",
    )


def test_current_run_outside_prefect_says_where_it_works():
    with pytest.raises(CairnError, match="inside a Prefect task run or flow run"):
        current_run()


def test_tasks_take_config_and_metrics(repo, data_dir: Path):
    (data_dir / "rows.csv").write_text("a\n1\n2\n")

    @flow
    def logged() -> str:
        return log_artifact(
            str(data_dir / "rows.csv"),
            name="rows",
            project="demo",
            config={"source": "test"},
            metrics={"rows": 2},
        )

    ref = logged()
    run = repo.artifact(ref).logged_by()
    assert (run.config, run.summary, run.state) == ({"source": "test"}, {"rows": 2}, "finished")
    assert repo.search_runs("summary.rows >= 2 AND config.source = 'test'") == [run]
