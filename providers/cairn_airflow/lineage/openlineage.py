"""OpenLineage datasets and facets for cairn versions.

Needs `apache-airflow-providers-openlineage` (which brings `openlineage-python`); only the
OpenLineage provider calls into this module (an operator's `get_openlineage_facets_on_*`
imports it when called, the asset converter imports it lazily), so cairn's operators
work the same without it.

A collection's dataset carries, when the version is known:

- `cairn_version` (`CairnVersionDatasetFacet`): ref, project, collection, type, version,
  versionId, digest, size, fileCount, aliases, state, references (how many entries are
  references);
- `version` (`datasetVersion` = `v3`), `documentation` (the version's description),
  `datasetType` (`FILE`, subType = the collection's type), `schema` for a table version;
- `symlinks`: the objects its reference entries point at (`s3://bucket` + key, ...);
- on an input `inputStatistics`, on an output `outputStatistics` (size, fileCount).

Those objects are also datasets of their own among the task's inputs: the task read them
(to pin or to download them), so a backend draws `s3://raw/... -> cairn demo/events`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attr
from openlineage.client.event_v2 import Dataset as OLDataset
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.generated.base import DatasetFacet
from openlineage.client.generated.dataset_type_dataset import DatasetTypeDatasetFacet
from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet
from openlineage.client.generated.documentation_dataset import DocumentationDatasetFacet
from openlineage.client.generated.input_statistics_input_dataset import (
    InputStatisticsInputDatasetFacet,
)
from openlineage.client.generated.output_statistics_output_dataset import (
    OutputStatisticsOutputDatasetFacet,
)
from openlineage.client.generated.schema_dataset import (
    SchemaDatasetFacet,
    SchemaDatasetFacetFields,
)
from openlineage.client.generated.symlinks_dataset import Identifier, SymlinksDatasetFacet

from .facts import Dataset, VersionFacts

FACET = "cairn_version"
#: the facet's JSON schema is described in providers/cairn_airflow/README.md ("OpenLineage")
SCHEMA_URL = "urn:cairn:openlineage:facets:1-0-0:CairnVersionDatasetFacet"
REFERENCE_TYPE = "FILE"


@attr.define
class CairnVersionDatasetFacet(DatasetFacet):
    """The cairn version a dataset (a collection) was read or written at."""

    ref: str | None = attr.field(default=None)
    project: str = attr.field(default="")
    collection: str = attr.field(default="")
    type: str | None = attr.field(default=None)
    version: str | None = attr.field(default=None)
    versionId: int | None = attr.field(default=None)  # noqa: N815 (OpenLineage's casing)
    digest: str | None = attr.field(default=None)
    size: int | None = attr.field(default=None)
    fileCount: int | None = attr.field(default=None)  # noqa: N815
    aliases: list[str] = attr.field(factory=list)
    state: str | None = attr.field(default=None)
    references: int = attr.field(default=0)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


def dataset_facets(facts: VersionFacts) -> dict[str, DatasetFacet]:
    """The dataset facets of a collection at a version (fewer when no version is known)."""
    facets: dict[str, DatasetFacet] = {}
    if facts.type:
        facets["datasetType"] = DatasetTypeDatasetFacet(datasetType="FILE", subType=facts.type)
    if facts.version is None:
        return facets
    facets[FACET] = CairnVersionDatasetFacet(
        ref=facts.ref,
        project=facts.project,
        collection=facts.name,
        type=facts.type,
        version=facts.version,
        versionId=facts.version_id,
        digest=facts.digest,
        size=facts.size,
        fileCount=facts.file_count,
        aliases=list(facts.aliases),
        state=facts.state,
        references=facts.reference_count,
    )
    facets["version"] = DatasetVersionDatasetFacet(datasetVersion=facts.version)
    if facts.description:
        facets["documentation"] = DocumentationDatasetFacet(description=facts.description)
    if facts.schema is not None:
        facets["schema"] = SchemaDatasetFacet(
            fields=[
                SchemaDatasetFacetFields(name=f.name, type=f.type or None, ordinal_position=i)
                for i, f in enumerate(facts.schema, start=1)
            ]
        )
    if facts.references:
        facets["symlinks"] = SymlinksDatasetFacet(
            identifiers=[
                Identifier(namespace=d.namespace, name=d.name, type=REFERENCE_TYPE)
                for d in facts.references
            ]
        )
    return facets


def dataset(facts: VersionFacts) -> OLDataset:
    """The collection as a plain dataset (what an asset converts to)."""
    return OLDataset(namespace=facts.namespace, name=facts.collection, facets=dataset_facets(facts))


def input_dataset(facts: VersionFacts) -> InputDataset:
    stats = {}
    if facts.version is not None:
        stats["inputStatistics"] = InputStatisticsInputDatasetFacet(
            size=facts.size, fileCount=facts.file_count
        )
    return InputDataset(
        namespace=facts.namespace,
        name=facts.collection,
        facets=dataset_facets(facts),
        inputFacets=stats,
    )


def output_dataset(facts: VersionFacts) -> OutputDataset:
    stats = {}
    if facts.version is not None:
        stats["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
            size=facts.size, fileCount=facts.file_count
        )
    return OutputDataset(
        namespace=facts.namespace,
        name=facts.collection,
        facets=dataset_facets(facts),
        outputFacets=stats,
    )


def reference_inputs(facts: Iterable[VersionFacts]) -> list[InputDataset]:
    """The referenced objects of every version, once each, as input datasets."""
    seen: dict[Dataset, None] = {}
    for f in facts:
        seen.update(dict.fromkeys(f.references))
    return [InputDataset(namespace=d.namespace, name=d.name) for d in seen]


def operator_lineage(inputs: Sequence[VersionFacts], outputs: Sequence[VersionFacts]) -> Any:
    """An `OperatorLineage` of the collections read (`inputs`) and written (`outputs`)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[*map(input_dataset, inputs), *reference_inputs([*inputs, *outputs])],
        outputs=[output_dataset(f) for f in outputs],
    )
