"""OpenLineage events of real DAG runs (dags/airflow_test_openlineage.py), as the
OpenLineage provider's file transport wrote them: the datasets cairn's operators, sensor
and TaskFlow helpers report, with their facets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from dagruns import asset_events, lineage_event, lineage_events, load_dag, states, xcom

from cairn import Artifact, Repository

DAGS = "airflow_test_openlineage.py"


def datasets(event: dict, side: str) -> dict[tuple[str, str], dict]:
    """(namespace, name) -> dataset, of an event's inputs or outputs."""
    return {(d["namespace"], d["name"]): d for d in event.get(side) or []}


def cairn_facet(dataset: dict) -> dict:
    facet = dict(dataset["facets"]["cairn_version"])
    assert facet.pop("_schemaURL") == "urn:cairn:openlineage:facets:1-0-0:CairnVersionDatasetFacet"
    facet.pop("_producer")
    return facet


def local_namespace(home: Path) -> str:
    return f"cairn://{home}/store"


def test_log_and_use_report_the_version_with_its_schema(repo, cairn_home):
    dr = load_dag(DAGS, "cairn_ol_log_use").test()
    assert dr.state == "success", states(dr)
    v = repo.artifact("demo/table:v0")
    key = (local_namespace(cairn_home), "demo/table")

    start = lineage_event(dr, "log", "START")
    assert datasets(start, "inputs") == {}
    assert datasets(start, "outputs")[key]["facets"] == {}  # no version before the task ran
    complete = lineage_event(dr, "log", "COMPLETE")
    out = datasets(complete, "outputs")[key]
    expected = {
        "ref": "demo/table:v0",
        "project": "demo",
        "collection": "table",
        "type": "dataset",
        "version": "v0",
        "versionId": v.id,
        "digest": v.digest,
        "size": v.size,
        "fileCount": 1,
        "aliases": ["candidate", "latest"],
        "state": "COMMITTED",
        "references": 0,
    }
    assert cairn_facet(out) == expected
    facets = out["facets"]
    assert facets["version"]["datasetVersion"] == "v0"
    assert facets["documentation"]["description"] == "three rows"
    assert (facets["datasetType"]["datasetType"], facets["datasetType"]["subType"]) == (
        "FILE",
        "dataset",
    )
    columns = [(f["name"], f["type"]) for f in facets["schema"]["fields"]]
    assert columns == [("id", "int64"), ("name", "string"), ("score", "double")]
    stats = out["outputFacets"]["outputStatistics"]
    assert (stats["size"], stats["fileCount"]) == (v.size, 1)
    assert "symlinks" not in facets  # no references

    # use: the alias resolved to v0, the same facets on the input side
    start = lineage_event(dr, "use", "START")
    assert list(datasets(start, "inputs")) == [key] and datasets(start, "outputs") == {}
    [used] = lineage_event(dr, "use", "COMPLETE")["inputs"]
    assert cairn_facet(used) == expected
    assert used["facets"]["schema"] == facets["schema"]
    assert used["inputFacets"]["inputStatistics"]["size"] == v.size


def test_references_to_s3_objects_are_datasets_and_symlinks(
    cairn_home, tmp_path, s3_endpoint, s3_bucket, monkeypatch
):
    store = f"s3://{s3_bucket}/cairn"
    options = {
        "catalog": f"sqlite:///{tmp_path / 'catalog.db'}",
        "store": store,
        "storage_options": s3_endpoint.storage_options,
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAIRN_DEFAULT", json.dumps({"conn_type": "cairn", "extra": options})
    )
    client = s3_endpoint.client()
    for name in ("a.csv", "b.csv"):
        client.put_object(Bucket=s3_bucket, Key=f"raw/{name}", Body=f"x\n{name}\n".encode())
    with Repository.open(**options) as repo:
        raw = Artifact("raw").add_reference(
            f"s3://{s3_bucket}/raw/", storage_options=s3_endpoint.storage_options
        )
        repo.log_artifact(raw, project="demo")

    dr = load_dag(DAGS, "cairn_ol_references").test()
    assert dr.state == "success", states(dr)
    namespace = f"cairn://{store}"
    objects = {(f"s3://{s3_bucket}", f"raw/{n}") for n in ("a.csv", "b.csv")}

    inputs = datasets(lineage_event(dr, "use", "COMPLETE"), "inputs")
    assert set(inputs) == {(namespace, "demo/raw"), *objects}
    raw = inputs[(namespace, "demo/raw")]
    assert cairn_facet(raw)["references"] == 2 and cairn_facet(raw)["version"] == "v0"
    links = raw["facets"]["symlinks"]["identifiers"]
    assert {(i["namespace"], i["name"], i["type"]) for i in links} == {
        (*o, "FILE") for o in objects
    }
    assert all(inputs[o]["facets"] == {} for o in objects)

    extend = lineage_event(dr, "extend", "COMPLETE")
    assert set(datasets(extend, "inputs")) == {(namespace, "demo/raw"), *objects}
    assert cairn_facet(datasets(extend, "inputs")[(namespace, "demo/raw")])["version"] == "v0"
    out = datasets(extend, "outputs")[(namespace, "demo/raw")]
    facet = cairn_facet(out)
    assert (facet["version"], facet["fileCount"], facet["references"]) == ("v1", 3, 2)
    assert len(out["facets"]["symlinks"]["identifiers"]) == 2
    assert "schema" not in out["facets"]  # CSV parts beside a text file: not a table


def test_distributed_parts_and_their_commit(repo, cairn_home):
    dr = load_dag(DAGS, "cairn_ol_distributed").test()
    assert dr.state == "success", states(dr)
    key = (local_namespace(cairn_home), "demo/parts")

    events = lineage_events(dr, "upsert")
    upserts = [e for e in events if e["eventType"] == "COMPLETE"]
    assert len(upserts) == 3
    # mapped tasks name their collection at START too
    assert [list(datasets(e, "outputs")) for e in events if e["eventType"] == "START"] == [
        [key]
    ] * 3
    for event in upserts:  # a part has no version of its own: the collection it goes to
        assert list(datasets(event, "outputs")) == [key]
        assert "cairn_version" not in datasets(event, "outputs")[key]["facets"]
    out = datasets(lineage_event(dr, "commit", "COMPLETE"), "outputs")[key]
    v = repo.artifact("demo/parts:v0")
    assert cairn_facet(out)["digest"] == v.digest and cairn_facet(out)["fileCount"] == 3
    fields = out["facets"]["schema"]["fields"]
    assert [(f["name"], f.get("type")) for f in fields] == [("id", None), ("value", None)]


@pytest.mark.parametrize("dag_id", ["cairn_ol_sensor", "cairn_ol_sensor_deferred"])
def test_the_sensor_reports_the_version_it_found(repo, cairn_home, dag_id, caplog):
    def log_model(weights: str) -> None:
        with Repository.open() as r:
            art = Artifact("model", type="model")
            with art.new_file("weights.bin") as f:
                f.write(weights)
            r.log_artifact(art, project="demo", aliases=["production"])

    log_model("w0")  # it waits for a version newer than v0
    if dag_id == "cairn_ol_sensor":
        log_model("w1")  # found by the first poke
        dr = load_dag(DAGS, dag_id).test()
    else:  # v1 comes once the task waits in the trigger: found by execute_complete
        later = threading.Thread(target=once_deferred, args=(dag_id, lambda: log_model("w1")))
        later.start()
        try:
            dr = load_dag(DAGS, dag_id).test()
        finally:
            later.join()
    assert dr.state == "success", states(dr)
    assert ("running trigger in line" in caplog.text) == dag_id.endswith("deferred")
    key = (local_namespace(cairn_home), "demo/model")
    starts = [e for e in lineage_events(dr, "wait") if e["eventType"] == "START"]
    assert len(starts) == (2 if dag_id.endswith("deferred") else 1)  # again on resuming
    assert all(list(datasets(e, "inputs")) == [key] for e in starts)
    found = datasets(lineage_event(dr, "wait", "COMPLETE"), "inputs")[key]
    facet = cairn_facet(found)
    assert (facet["ref"], facet["type"], facet["aliases"]) == (
        "demo/model:v1",
        "model",
        ["latest", "production"],
    )


def test_taskflow_tasks_report_through_the_hook_lineage_collector(repo, cairn_home, tmp_path):
    raw_file = tmp_path / "raw.csv"
    raw_file.write_text("a,b\n1,2\n")
    repo.log_artifact(Artifact("raw").add_reference(str(raw_file)), project="demo")

    dr = load_dag(DAGS, "cairn_ol_taskflow").test()
    assert dr.state == "success", states(dr)
    ns = local_namespace(cairn_home)

    features = lineage_event(dr, "features", "COMPLETE")
    inputs = datasets(features, "inputs")
    # the referenced file is a dataset too, converted by Airflow's common.io provider
    assert set(inputs) == {(ns, "demo/raw"), ("file", str(raw_file))}
    raw = inputs[(ns, "demo/raw")]
    assert cairn_facet(raw)["version"] == "v0" and cairn_facet(raw)["references"] == 1
    assert raw["facets"]["symlinks"]["identifiers"] == [
        {"namespace": "file", "name": str(raw_file), "type": "FILE"}
    ]
    [out] = features["outputs"]
    assert (out["namespace"], out["name"]) == (ns, "demo/features")
    assert cairn_facet(out)["digest"] == repo.artifact("demo/features:v0").digest

    export = lineage_event(dr, "export", "COMPLETE")  # through current_run()
    report = Path(os.environ["CAIRN_TEST_DATA"], "exports", "report.txt")
    assert set(datasets(export, "inputs")) == {(ns, "demo/features"), ("file", str(report))}
    [out] = export["outputs"]
    assert cairn_facet(out)["ref"] == "demo/export:v0" and cairn_facet(out)["type"] == "report"
    assert xcom(dr, "export") == "demo/features:v0 -> demo/export:v0"

    # the alias outlet: the version's asset was attached to it, its consumer is queued
    [event] = asset_events("cairn://demo/export", dr)
    assert event.extra["ref"] == "demo/export:v0"
    assert alias_assets("cairn:exports") == ["cairn://demo/export"]
    assert "cairn_ol_alias_consumer" in queued_dag_runs()


def test_a_failed_task_reports_the_input_it_had_read(repo, cairn_home, tmp_path):
    (tmp_path / "first.parquet").write_bytes(b"PAR1 not really")
    v0 = repo.log_artifact(Artifact("table").add_file(tmp_path / "first.parquet"), project="demo")

    dr = load_dag(DAGS, "cairn_ol_failure").test()
    assert dr.state == "failed"
    key = (local_namespace(cairn_home), "demo/table")
    start = lineage_event(dr, "extend", "START")
    assert list(datasets(start, "inputs")) == [key] == list(datasets(start, "outputs"))
    fail = lineage_event(dr, "extend", "FAIL")
    assert cairn_facet(datasets(fail, "inputs")[key])["digest"] == v0.digest
    assert datasets(fail, "outputs")[key]["facets"] == {}  # nothing was written
    assert [v.version for v in repo.versions("demo/table")] == ["v0"]


def test_events_emitted_from_a_forked_process_as_workers_do(cairn_home):
    """The provider's default: each event is extracted and sent by a fork of the task
    process, which must look no connection up (it would hang there): run the DAG in a
    process of its own (no pytest threads to fork) with that default."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from dagruns import load_dag
dr = load_dag({DAGS!r}, "cairn_ol_log_use").test()
print("RUN", dr.state, dr.run_id)
"""
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "False"}
    env["AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT"] = "60"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=900, env=env
    )
    [line] = [x for x in done.stdout.splitlines() if x.startswith("RUN ")] or [done.stderr[-3000:]]
    _, state, run_id = line.split(" ", 2)
    assert state == "success"
    assert "expired and will be terminated" not in done.stdout + done.stderr
    dr = SimpleNamespace(dag_id="cairn_ol_log_use", run_id=run_id)
    key = (local_namespace(cairn_home), "demo/table")
    for task_id in ("log", "use"):
        kinds = [e["eventType"] for e in lineage_events(dr, task_id)]
        assert kinds == ["START", "COMPLETE"], (task_id, kinds)
    assert list(datasets(lineage_event(dr, "log", "START"), "outputs")) == [key]
    [used] = lineage_event(dr, "use", "COMPLETE")["inputs"]
    assert cairn_facet(used)["ref"] == "demo/table:v0"


def test_the_operators_work_without_the_openlineage_provider(cairn_home):
    """A deployment without apache-airflow-providers-openlineage: hide it and run a DAG."""
    script = f"""
import importlib.abc, importlib.metadata, sys
import importlib_metadata

HIDDEN = ("openlineage", "airflow.providers.openlineage")

class Uninstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == h or name.startswith(h + ".") for h in HIDDEN):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Uninstalled())
for lib in (importlib.metadata, importlib_metadata):
    def distributions(_all=lib.distributions, **kw):
        return [d for d in _all(**kw) if "openlineage" not in (d.metadata["name"] or "")]
    lib.distributions = distributions

sys.path.insert(0, {str(Path(__file__).parent)!r})
from dagruns import load_dag
from cairn_airflow.lineage.operator import openlineage_active
from cairn_airflow.lineage.collector import active_collector
assert not openlineage_active() and active_collector() is None
dr = load_dag("airflow_test_templated.py", "cairn_test_templated").test()
print("STATE", dr.state)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert "STATE success" in done.stdout, done.stderr[-3000:]
    with Repository.open() as repo:
        [notes] = [c["name"] for c in repo.collections("demo")]
        assert notes.startswith("notes_") and repo.artifact(f"demo/{notes}:v0").file_count == 2


def once_deferred(dag_id: str, then, timeout: float = 300) -> None:
    """Call `then` once a task instance of `dag_id` is deferred (or after `timeout`)."""
    import time

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            found = session.scalars(
                select(TaskInstance.state).where(TaskInstance.dag_id == dag_id)
            ).all()
        if "deferred" in [str(s) for s in found]:
            break
        time.sleep(0.2)
    then()


def alias_assets(name: str) -> list[str]:
    from airflow.models.asset import AssetAliasModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        alias = session.scalar(select(AssetAliasModel).where(AssetAliasModel.name == name))
        return sorted(a.uri for a in alias.assets) if alias else []


def queued_dag_runs() -> set[str]:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return {q.target_dag_id for q in session.query(AssetDagRunQueue)}


@pytest.fixture(autouse=True)
def _no_leftover_connection(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CAIRN_DEFAULT", raising=False)
