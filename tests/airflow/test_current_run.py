"""`cairn_airflow.current_run()` in real `dag.test()` runs: one cairn run per task instance
(per map index), grouped by the DAG run, finished by the task's own callbacks."""

from __future__ import annotations

from dagruns import load_dag, states, xcom

CURRENT = "airflow_test_current_run.py"


def test_current_run_is_the_task_instance_run_and_ends_with_the_task(repo):
    dr = load_dag(CURRENT, "cairn_test_current_run").test()

    assert states(dr)["score[1]"] == ("success", 2) and states(dr)["broken"] == ("failed", 1)
    group = f"airflow:cairn_test_current_run:{dr.run_id}"
    scores = repo.search_runs("job_type = 'score'", params={}, order_by="-summary.score")
    assert [(r.attributes["map_index"], r.summary, r.config, r.state) for r in scores] == [
        (2, {"score": 30, "try": 1}, {"x": 3}, "finished"),
        (1, {"score": 20, "try": 2}, {"x": 2}, "finished"),  # the retry resumed the run
        (0, {"score": 10, "try": 1}, {"x": 1}, "finished"),
    ]
    assert {r.group for r in scores} == {group}
    assert [r.name for r in scores] == [f"cairn_test_current_run.score[{i}]" for i in (2, 1, 0)]
    assert sorted(xcom(dr, "score", map_index=i) for i in range(3)) == sorted(r.id for r in scores)

    [double] = repo.search_runs("group = :g AND job_type = 'double'", params={"g": group})
    assert double.summary == {"twice": True} and double.config == {"extra": True}
    assert double.state == "finished" and double.id == xcom(dr, "double")
    [broken] = repo.search_runs("job_type = 'broken'")
    assert (broken.state, broken.summary) == ("failed", {"before": "crash"})
    assert "in project demo, not elsewhere" in xcom(dr, "outside_project")
    # the best run of the sweep, as the issue asks it
    [best] = repo.search_runs(
        "group = :g AND job_type = 'score'", params={"g": group}, order_by="-summary.score", limit=1
    )
    assert best.config == {"x": 3}


def test_operators_take_config_and_metrics(repo):
    dr = load_dag(CURRENT, "cairn_test_operator_metrics").test()

    assert dr.state == "success", states(dr)
    run = repo.artifact("demo/rows:latest").logged_by()
    assert run.config == {"source": "cairn_test_operator_metrics"}
    assert run.summary["rows"] == 2 and run.summary["date"] == dr.logical_date.strftime("%Y-%m-%d")
    assert repo.search_runs("summary.rows = 2 AND job_type = 'log_artifact'") == [run]
