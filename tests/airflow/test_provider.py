"""The provider as Airflow discovers it: entry point, provider info, connection type."""

from __future__ import annotations

import json
import subprocess
import sys

from cairn_airflow import get_provider_info


def test_airflow_providers_list_shows_cairn():
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = {p["package_name"]: p for p in json.loads(done.stdout)}
    assert "cairn" in listed
    assert listed["cairn"]["version"] == "0.1.0"


def test_provider_info_registers_the_cairn_connection_type():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManager()
    info = manager.providers["cairn"].data
    assert info["connection-types"] == get_provider_info()["connection-types"]
    hook = ProvidersManagerTaskRuntime().hooks["cairn"]
    assert hook.hook_class_name == "cairn_airflow.hooks.cairn.CairnHook"
    assert hook.connection_id_attribute_name == "cairn_conn_id"
    widgets = manager.connection_form_widgets
    assert {"catalog", "store", "storage_options", "cache_dir"} <= {
        w.field_name for k, w in widgets.items() if k.startswith("extra__cairn__")
    }
    assert "password" in manager.field_behaviours["cairn"]["hidden_fields"]


def test_every_public_name_imports():
    import cairn_airflow

    for name in cairn_airflow.__all__:
        assert getattr(cairn_airflow, name) is not None
