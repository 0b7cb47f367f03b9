"""Asset events of operators whose collection name is templated (an AssetAlias outlet)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from dagruns import asset_events, load_dag, states, xcom

from cairn_airflow.assets import outlet_for


def test_a_templated_name_emits_its_event_through_an_alias(repo):
    dag = load_dag("airflow_test_templated.py", "cairn_test_templated")
    dr = dag.test(logical_date=datetime(2024, 1, 5, tzinfo=timezone.utc))

    assert dr.state == "success", states(dr)
    v = repo.artifact("demo/notes_20240105:first")
    assert sorted(e.path for e in v.files()) == ["notes.txt", "sub/more.txt"]
    assert v.metadata == {"ds": "2024-01-05"}
    [event] = asset_events("cairn://demo/notes_20240105", dr)
    assert event.extra["ref"] == xcom(dr, "log") == "demo/notes_20240105:v0"
    assert event.extra["digest"] == v.digest
    assert Path(xcom(dr, "read_one")).read_text() == "notes.txt of 2024-01-05\n"
    assert [r.attributes["task_id"] for r in v.used_by()] == ["read_one"]


def test_static_names_get_an_asset_and_templated_ones_an_alias():
    assert type(outlet_for("demo", "x")).__name__ == "Asset"
    assert type(outlet_for("demo", "x_{{ ds }}")).__name__ == "AssetAlias"
