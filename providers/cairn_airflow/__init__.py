"""cairn provider for Apache Airflow 3: a `cairn` connection, operators, a sensor.

Importing this package is cheap (Airflow reads `get_provider_info` while discovering
providers); the operators and the hook load on first use:

    from cairn_airflow import LogArtifactOperator, UpsertArtifactOperator, FinishArtifactOperator
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy exports below resolve to, for type checkers and IDEs
    from .assets import asset_alias, asset_for, record_asset_event
    from .current import current_run
    from .distributed import finish_version, upsert_part
    from .hooks.cairn import CairnHook
    from .identity import TaskIdentity, task_run
    from .operators.artifact import (
        FinishArtifactOperator,
        LogArtifactOperator,
        UpsertArtifactOperator,
        UseArtifactOperator,
    )
    from .sensors.alias import ArtifactAliasSensor
    from .triggers.alias import ArtifactAliasTrigger

__version__ = "0.1.0"

_EXPORTS = {
    "CairnHook": "cairn_airflow.hooks.cairn",
    "LogArtifactOperator": "cairn_airflow.operators.artifact",
    "UseArtifactOperator": "cairn_airflow.operators.artifact",
    "UpsertArtifactOperator": "cairn_airflow.operators.artifact",
    "FinishArtifactOperator": "cairn_airflow.operators.artifact",
    "ArtifactAliasSensor": "cairn_airflow.sensors.alias",
    "ArtifactAliasTrigger": "cairn_airflow.triggers.alias",
    "current_run": "cairn_airflow.current",
    "TaskIdentity": "cairn_airflow.identity",
    "task_run": "cairn_airflow.identity",
    "asset_for": "cairn_airflow.assets",
    "asset_alias": "cairn_airflow.assets",
    "record_asset_event": "cairn_airflow.assets",
    "upsert_part": "cairn_airflow.distributed",
    "finish_version": "cairn_airflow.distributed",
}

__all__ = [
    "ArtifactAliasSensor",
    "ArtifactAliasTrigger",
    "CairnHook",
    "FinishArtifactOperator",
    "LogArtifactOperator",
    "TaskIdentity",
    "UpsertArtifactOperator",
    "UseArtifactOperator",
    "asset_alias",
    "asset_for",
    "current_run",
    "finish_version",
    "get_provider_info",
    "record_asset_event",
    "task_run",
    "upsert_part",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cairn_airflow' has no attribute {name!r}")


def get_provider_info() -> dict[str, Any]:
    """What `airflow providers list` and the connection form know about this provider."""
    return {
        "package-name": "cairn",
        "name": "cairn",
        "description": "Versioned, content-addressed artifact storage for data pipelines.",
        "versions": [__version__],
        "integrations": [{"integration-name": "cairn", "tags": ["software"]}],
        "hooks": [{"integration-name": "cairn", "python-modules": ["cairn_airflow.hooks.cairn"]}],
        "operators": [
            {"integration-name": "cairn", "python-modules": ["cairn_airflow.operators.artifact"]}
        ],
        "sensors": [
            {"integration-name": "cairn", "python-modules": ["cairn_airflow.sensors.alias"]}
        ],
        "triggers": [
            {"integration-name": "cairn", "python-modules": ["cairn_airflow.triggers.alias"]}
        ],
        "connection-types": [
            {
                "connection-type": "cairn",
                "hook-class-name": "cairn_airflow.hooks.cairn.CairnHook",
                "hook-name": "cairn",
                "conn-fields": {
                    "catalog": {
                        "label": "Catalog URL",
                        "description": "SQLAlchemy URL of the catalog, e.g. "
                        "postgresql+psycopg://user@host/cairn (empty: embedded SQLite)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "store": {
                        "label": "Store URL",
                        "description": "Where the bytes go, e.g. s3://bucket/prefix "
                        "(empty: a folder under $CAIRN_HOME)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "storage_options": {
                        "label": "Storage options (JSON)",
                        "description": 'fsspec options of the store, e.g. {"anon": false}',
                        "schema": {"type": ["string", "null"]},
                    },
                    "cache_dir": {
                        "label": "Cache folder",
                        "description": "Local download cache (empty: $CAIRN_HOME/cache)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "ui_url": {
                        "label": "UI URL",
                        "description": "A standalone `cairn ui` for task links, e.g. "
                        "http://cairn:8765 (empty: the UI in this Airflow, at /cairn)",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "password", "port"],
                    "relabeling": {},
                    "placeholders": {},
                },
            }
        ],
        # cairn://project/name: checked and normalised (uris), created by the hook-level
        # lineage collector (assets), converted to OpenLineage datasets (lineage.converter)
        "asset-uris": [
            {
                "schemes": ["cairn"],
                "handler": "cairn_airflow.uris.normalize_asset_uri",
                "factory": "cairn_airflow.assets.create_asset",
                "to_openlineage_converter": (
                    "cairn_airflow.lineage.converter.convert_asset_to_openlineage"
                ),
            }
        ],
        # the cairn UI in the API server at /cairn, with a navigation entry
        "plugins": [{"name": "cairn", "plugin-class": "cairn_airflow.plugins.CairnPlugin"}],
        "extra-links": ["cairn_airflow.links.CairnVersionLink"],
    }
