"""`CairnHook` and its connection: embedded default, env-var connections, UI extras."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from dagruns import load_dag, states

from cairn import InvalidName, Repository
from cairn_airflow import CairnHook
from cairn_airflow.hooks.cairn import options_from_extras, version_index


def connection(monkeypatch, **extra) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAIRN_DEFAULT", json.dumps({"conn_type": "cairn", "extra": extra})
    )


def test_without_a_connection_the_embedded_default_is_used(cairn_home):
    hook = CairnHook()
    assert hook.repository_options == {}
    repo = hook.get_repository()
    assert repo.home == str(cairn_home)
    assert (cairn_home / "catalog.db").exists()
    hook.close()


def test_a_json_connection_names_catalog_store_and_storage_options(monkeypatch, tmp_path):
    catalog = f"sqlite:///{tmp_path / 'elsewhere' / 'catalog.db'}"
    store = str(tmp_path / "elsewhere" / "store")
    connection(monkeypatch, catalog=catalog, store=store, storage_options={"auto_mkdir": True})

    hook = CairnHook()
    assert hook.repository_options == {
        "catalog": catalog,
        "store": store,
        "storage_options": {"auto_mkdir": True},
    }
    assert str(hook.get_repository().catalog.engine.url) == catalog
    hook.close()


def test_ui_extras_are_read_with_their_prefix_and_json_text():
    options = options_from_extras(
        {
            "extra__cairn__store": "s3://bucket/cairn",
            "storage_options": '{"anon": false}',
            "catalog": "",
        },
        "cairn_default",
    )
    assert options == {"store": "s3://bucket/cairn", "storage_options": {"anon": False}}


def test_bad_storage_options_say_which_connection_and_why():
    with pytest.raises(ValueError, match="connection 'mine': storage_options is not valid JSON"):
        options_from_extras({"storage_options": "{anon: false"}, "mine")


def test_a_dag_run_writes_where_the_connection_points(monkeypatch, tmp_path, cairn_home):
    elsewhere = tmp_path / "elsewhere"
    catalog = f"sqlite:///{elsewhere / 'catalog.db'}"
    connection(monkeypatch, catalog=catalog, store=str(elsewhere / "store"))
    dag = load_dag("airflow_daily_incremental.py", "cairn_daily_incremental")
    dr = dag.test(logical_date=datetime(2024, 2, 1, tzinfo=timezone.utc))

    assert dr.state == "success", states(dr)
    with Repository.open(catalog=catalog, store=str(elsewhere / "store")) as repo:
        assert repo.artifact("demo/clicks:latest").file_count == 2
    assert not (cairn_home / "catalog.db").exists()


@pytest.mark.parametrize(
    "value, index", [(None, None), ("", None), (3, 3), ("3", 3), ("v3", 3), ("demo/m:v12", 12)]
)
def test_version_index(value, index):
    assert version_index(value) == index


def test_version_index_rejects_aliases():
    with pytest.raises(InvalidName, match="expected v3, 3 or a ref ending in :v3"):
        version_index("demo/m:production")
