"""`ArtifactAliasSensor`: waiting in poke mode and deferred to the triggerer."""

from __future__ import annotations

import threading

import pytest
from dagruns import load_dag, states, xcom

from cairn import Artifact, Repository


def log_model(text: str) -> str:
    with Repository.open() as repo:
        art = Artifact("model", type="model")
        with art.new_file("weights.txt") as f:
            f.write(text)
        return repo.log_artifact(art, project="demo", aliases=["production"]).ref


@pytest.mark.parametrize(
    "dag_id, deferred",
    [("cairn_test_sensor_poke", False), ("cairn_test_sensor_deferred", True)],
)
def test_sensor_waits_until_the_alias_moves_past_a_version(dag_id, deferred, caplog):
    assert log_model("first") == "demo/model:v0"  # production is v0: not newer yet
    later = threading.Timer(1.5, log_model, args=("second",))
    later.start()
    try:
        dr = load_dag("airflow_test_sensor.py", dag_id).test()
    finally:
        later.join()

    assert dr.state == "success", states(dr)
    assert xcom(dr, "wait") == "demo/model:v1"
    # dag.test() runs a deferred task's trigger in line, and says so
    assert ("running trigger in line" in caplog.text) == deferred


def test_sensor_returns_at_once_when_the_alias_is_already_newer():
    log_model("first")
    log_model("second")
    dr = load_dag("airflow_test_sensor.py", "cairn_test_sensor_deferred").test()

    assert dr.state == "success", states(dr)
    assert xcom(dr, "wait") == "demo/model:v1"
