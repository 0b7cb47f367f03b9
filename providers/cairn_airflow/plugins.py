"""The cairn UI inside Airflow 3: a plugin that mounts it in the API server at /cairn,
with an "Artifacts" entry in the navigation, reading through the provider's `cairn`
connection (`[cairn] ui_conn_id`, default `cairn_default`).

Registered through the provider's metadata (`get_provider_info()["plugins"]`), so
`airflow plugins` lists it. Pages need an Airflow session like the rest of the UI: a
visitor without one is sent to Airflow's login and back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin

from .links import URL_PREFIX


def conn_id() -> str:
    from airflow.configuration import conf

    from .hooks.cairn import CairnHook

    return conf.get("cairn", "ui_conn_id", fallback=CairnHook.default_conn_name)


def _open_repository() -> Any:
    from .hooks.cairn import CairnHook

    return CairnHook(conn_id()).get_repository()


def _login(next_url: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


def ui_app() -> Any:
    """The cairn UI as a FastAPI app, behind Airflow's own authentication."""
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends

    from cairn.ui import create_app

    return create_app(
        _open_repository,
        title="cairn · Airflow",
        dependencies=[Depends(requires_authenticated())],
        login_url=_login,
        run_links=task_instance_links,
    )


def task_instance_links(run: dict[str, Any]) -> list[dict[str, str]]:
    """From a cairn run of a task instance to that task instance in Airflow's UI."""
    a = run.get("attributes") or {}
    if run.get("kind") != "airflow" or not all(k in a for k in ("dag_id", "run_id", "task_id")):
        return []
    path = "/dags/{}/runs/{}/tasks/{}".format(
        *(quote(str(a[k]), safe="") for k in ("dag_id", "run_id", "task_id"))
    )
    if int(a.get("map_index", -1)) >= 0:
        path += f"/mapped/{int(a['map_index'])}"
    return [{"label": "Task instance in Airflow", "url": path}]


class CairnPlugin(AirflowPlugin):
    """Artifacts, their versions, files and lineage, beside the DAGs that make them."""

    name = "cairn"
    fastapi_apps = [{"app": ui_app(), "url_prefix": URL_PREFIX, "name": "cairn"}]
    external_views = [
        {
            "name": "Artifacts",
            "href": URL_PREFIX.lstrip("/") + "/projects",
            "url_route": "cairn",
            "destination": "nav",
            "category": "browse",
            "icon": URL_PREFIX.lstrip("/") + "/static/favicon.svg",
        }
    ]
    # the operators carry their "cairn version" link themselves (links.CairnVersionLink):
    # it is computed where the task ran, not by the API server
