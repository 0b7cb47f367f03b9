"""Lineage of cairn versions for OpenLineage and Airflow's hook-level lineage collector.

`facts` reads what a version is (plain data, no OpenLineage import); `openlineage` turns
facts into OpenLineage datasets and facets (needs the OpenLineage provider); `operator`
gives the operators their `get_openlineage_facets_on_*`; `collector` reports TaskFlow
tasks' versions to Airflow's hook-level collector; `converter` is the `cairn` asset
scheme's OpenLineage converter. Only `openlineage` imports OpenLineage, and only when
the OpenLineage provider calls in.
"""
