"""TaskFlow lineage: a task's cairn run reported to Airflow's hook-level lineage collector.

A `@task` has no `get_openlineage_facets_*` of its own; the OpenLineage provider then
reads what hooks reported to the collector (`airflow.sdk.lineage`). `task_run` (and so
`current_run`) adds callbacks to the running task that, when it ends (success, failure or
retry; Airflow runs a task's callbacks before its listeners), report the versions its
cairn run used as input assets and those it logged or contributed to as output assets:
`cairn://project/name` with the version's facts in the asset's extra (`converter`), and
each referenced object as an asset of its own URI (converted by the provider that owns
its scheme: amazon for s3://, google for gs://, common.io for file://).
"""

from __future__ import annotations

import logging
from typing import Any

from cairn import ArtifactVersion, Run

from .converter import EXTRA_KEY
from .facts import Dataset, namespace_of, version_facts

log = logging.getLogger(__name__)
CALLBACKS = ("on_success_callback", "on_failure_callback", "on_retry_callback")


def active_collector() -> Any:
    """Airflow's hook-level lineage collector, or None when nothing reads it."""
    try:
        from airflow.sdk.lineage import NoOpCollector, get_hook_lineage_collector
    except ImportError:
        return None
    collector = get_hook_lineage_collector()
    return None if isinstance(collector, NoOpCollector) else collector


def report_with_task(task: Any, run: Run) -> None:
    """Report `run`'s versions when `task` ends (once, whichever callback comes)."""
    if active_collector() is None:
        return
    if any(getattr(f, "cairn_run_id", None) == run.id for f in _callbacks(task, CALLBACKS[0])):
        return  # a second task_run() of the same task instance

    def report_cairn_lineage(context: Any) -> None:
        report_run(run)

    report_cairn_lineage.cairn_run_id = run.id  # type: ignore[attr-defined]
    for kind in CALLBACKS:
        setattr(task, kind, [*_callbacks(task, kind), report_cairn_lineage])


def report_run(run: Run) -> None:
    """Report what `run` used and wrote to the collector; never fails the task."""
    collector = active_collector()
    if collector is None:
        return
    try:
        repo = run.repository
        namespace = namespace_of(repo)
        for v in run.used_artifacts():
            _report(collector.add_input_asset, collector, repo, v, namespace)
        for v in [*run.logged_artifacts(), *run.contributed_artifacts()]:
            _report(collector.add_output_asset, collector, repo, v, namespace)
    except Exception as exc:  # lineage must not change how the task ends
        log.warning("cairn lineage of run %s not reported: %s", run.id, exc)


def _report(add: Any, collector: Any, repo: Any, v: ArtifactVersion, namespace: str) -> None:
    facts = version_facts(v, namespace)
    add(
        repo,
        scheme="cairn",
        asset_kwargs={"project": v.project, "name": v.name},
        asset_extra={EXTRA_KEY: facts.to_json()},
    )
    for d in facts.references:
        collector.add_input_asset(repo, uri=object_uri(d))


def object_uri(d: Dataset) -> str:
    """The URI of a referenced object's dataset (`file` + `/a/b` -> `file:///a/b`)."""
    if d.namespace == "file":
        return f"file://{d.name}"
    return f"{d.namespace}/{d.name}"


def _callbacks(task: Any, kind: str) -> list[Any]:
    current = getattr(task, kind, None) or []
    return list(current) if isinstance(current, list | tuple) else [current]
