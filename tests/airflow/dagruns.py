"""Running DAGs under test and reading back what they did, from Airflow's metadata DB."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any

_modules: dict[str, ModuleType] = {}


def load_dag(filename: str, dag_id: str) -> Any:
    """A DAG object from a file in the session's DAGs folder (each file imported once)."""
    if filename not in _modules:
        path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / filename
        spec = importlib.util.spec_from_file_location(f"dags_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[filename] = module
    for value in vars(_modules[filename]).values():
        if getattr(value, "dag_id", None) == dag_id and hasattr(value, "test"):
            return value
    raise LookupError(f"no DAG {dag_id} in {filename}")


def states(dr: Any) -> dict[str, tuple[str, int]]:
    """`task_id` or `task_id[i]` -> (state, try_number) for every task instance of a run."""
    out = {}
    for ti in dr.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        out[key] = (str(ti.state), ti.try_number)
    return out


def xcom(dr: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                run_id=dr.run_id,
                dag_ids=dr.dag_id,
                task_ids=task_id,
                key=key,
                map_indexes=map_index,
            ).with_only_columns(XComModel.value)
        ).first()
        assert row is not None, f"no XCom {key} of {task_id} in {dr.run_id}"
        return XComModel.deserialize_value(row)


def asset_events(uri: str, dr: Any = None) -> list[Any]:
    """Asset events on `uri` (those of DAG run `dr` only, if given), oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    q = (
        select(AssetEvent)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.uri == uri)
        .order_by(AssetEvent.id)
    )
    if dr is not None:
        q = q.where(AssetEvent.source_dag_id == dr.dag_id, AssetEvent.source_run_id == dr.run_id)
    with create_session() as session:
        events = list(session.scalars(q))
        session.expunge_all()
    return events


def rerun(dag: Any, dr: Any, monkeypatch: Any, **test_kwargs: Any) -> Any:
    """Run DAG run `dr` again as clearing it would: same logical date, same run_id.

    dag.test() replaces the run of a logical date but names the new one after the current
    time; pinning the name makes it the same DAG run to cairn, as a clear in the UI does.
    """
    from airflow.models.dagrun import DagRun

    monkeypatch.setattr(DagRun, "generate_run_id", staticmethod(lambda **_: dr.run_id))
    return dag.test(logical_date=dr.logical_date, **test_kwargs)


def lineage_events(dr: Any, task_id: str | None = None) -> list[dict[str, Any]]:
    """The OpenLineage events of DAG run `dr`'s tasks (only `task_id`'s, if given), as the
    file transport wrote them (conftest: one JSON per line), in order."""
    import json

    transport = json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    path = Path(transport["log_file_path"])
    found = []
    for line in path.read_text().splitlines() if path.exists() else []:
        event = json.loads(line)
        job = event["job"]["name"]
        if "." not in job or job.split(".", 1)[0] != dr.dag_id:
            continue  # a DAG-level event (its job is the DAG) or another DAG's
        if dr.run_id not in json.dumps(event["run"].get("facets", {})):
            continue
        if task_id is None or job == f"{dr.dag_id}.{task_id}":
            found.append(event)
    return found


def lineage_event(dr: Any, task_id: str, kind: str) -> dict[str, Any]:
    """The one event of type `kind` (START, COMPLETE, FAIL) of a task of `dr`."""
    events = [e for e in lineage_events(dr, task_id) if e["eventType"] == kind]
    assert len(events) == 1, (task_id, kind, [e["eventType"] for e in lineage_events(dr)])
    return events[0]
