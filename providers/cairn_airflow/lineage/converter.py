"""The `cairn` asset scheme's OpenLineage converter (`to_openlineage_converter`).

Airflow's OpenLineage provider calls it for every `cairn://project/name` asset it meets:
outlets and inlets declared on tasks, assets attached to aliases at run time, and the
assets TaskFlow tasks report to the hook-level lineage collector. Those last carry the
version's facts in their `extra` (key `cairn`), so they convert with every facet; any
other asset names only its collection, in the namespace of the repository the lineage
context points at (the reporting task's), else that of the default `cairn` connection as
this process's hooks found it, else the one CAIRN_STORE / CAIRN_HOME give. It looks no
connection up: it may run in a forked copy of the task process. Importable without
OpenLineage: Airflow imports it while discovering providers.
"""

from __future__ import annotations

from typing import Any

from cairn import Repository

from ..uris import parse_asset_uri
from .facts import (
    VersionFacts,
    collection_facts,
    namespace_of,
    repository_namespace,
    store_location,
)

#: where an asset's `extra` holds the version's facts (VersionFacts.to_json)
EXTRA_KEY = "cairn"


def convert_asset_to_openlineage(asset: Any, lineage_context: Any = None) -> Any:
    """An OpenLineage `Dataset` for a `cairn://project/name` asset."""
    from .openlineage import dataset

    found = parse_asset_uri(asset.uri)
    known = (asset.extra or {}).get(EXTRA_KEY)
    if isinstance(known, dict):
        facts = VersionFacts.from_json(known)
        if (facts.project, facts.name) == (found.project, found.name):
            return dataset(facts)
    return dataset(collection_facts(_namespace(lineage_context), found.project, found.name))


def _namespace(lineage_context: Any) -> str:
    if isinstance(lineage_context, Repository):
        return namespace_of(lineage_context)
    from ..hooks.cairn import LINEAGE_NAMESPACES, CairnHook

    conn_id = getattr(lineage_context, "cairn_conn_id", CairnHook.default_conn_name)
    known = LINEAGE_NAMESPACES.get(conn_id)
    return known or repository_namespace(store_location({}))
