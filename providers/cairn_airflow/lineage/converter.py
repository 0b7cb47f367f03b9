"""The `cairn` asset scheme's OpenLineage converter (`to_openlineage_converter`).

Airflow's OpenLineage provider calls it for every `cairn://project/name` asset it meets:
outlets and inlets declared on tasks, assets attached to aliases at run time, and the
assets TaskFlow tasks report to the hook-level lineage collector. Those last carry the
version's facts in their `extra` (key `cairn`), so they convert with every facet; any
other asset names only its collection, in the namespace of the repository the lineage
context points at (the reporting task's), else that of the default `cairn` connection.
Importable without OpenLineage: Airflow imports it while discovering providers.
"""

from __future__ import annotations

from typing import Any

from cairn import Repository

from ..uris import parse_asset_uri
from .facts import VersionFacts, collection_facts, namespace_of

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
    from ..hooks.cairn import CairnHook

    hook = lineage_context if isinstance(lineage_context, CairnHook) else CairnHook()
    return hook.lineage_namespace
