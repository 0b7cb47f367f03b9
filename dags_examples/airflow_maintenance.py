"""Nightly maintenance: apply the retention policies, then free the bytes with `gc`.

    python dags_examples/airflow_maintenance.py            # one run, with dag.test()
    python dags_examples/airflow_maintenance.py --dry-run  # only report what would go

runs on the repository of the `cairn_default` connection (else the embedded default,
~/.cairn or $CAIRN_HOME). Declare the policies once, e.g.

    cairn retention set demo --keep-last 10 --keep-aliased --keep-used 30d

`retain` marks the versions no policy keeps DELETED (never one holding a protected alias
such as `production`, never one a writer or a running task has in use) and reports them;
`gc` then deletes the bytes no version needs any more. Both return plain summaries via
XCom. On a PostgreSQL catalog, run it with a connection whose role owns the catalog (or
has BYPASSRLS): both steps must see every project's versions and writers' leases.
Trigger it with `{"dry_run": true}` to see what would go without changing anything.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task

from cairn_airflow import CairnHook

with DAG(
    dag_id="cairn_maintenance",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,  # two maintenance runs at once would only repeat each other
    params={"dry_run": Param(False, type="boolean", description="Change nothing")},
    tags=["cairn", "example", "maintenance"],
) as dag:

    @task
    def retain() -> dict[str, Any]:
        """Apply every retention policy; what went (or would) and what gc would free."""
        dry_run = bool(get_current_context()["params"]["dry_run"])
        hook = CairnHook()
        try:
            report = hook.get_repository().retain(dry_run=dry_run)
        finally:
            hook.close()
        print(report)
        return {
            "dry_run": dry_run,
            "deleted": [d.ref for d in report.deleted],
            "in_use": list(report.in_use),
            "kept": report.kept,
            "gc_bytes": report.gc_bytes,
        }

    @task
    def gc(retained: dict[str, Any]) -> dict[str, Any]:
        """Delete the stored objects no live version needs (counted only on a dry run)."""
        hook = CairnHook()
        try:
            report = hook.get_repository().gc(dry_run=retained["dry_run"])
        finally:
            hook.close()
        print(report)
        return {
            "dry_run": report.dry_run,
            "objects_deleted": report.objects_deleted,
            "bytes_freed": report.bytes_freed,
            "versions_deleted": len(retained["deleted"]),
        }

    gc(retain())


if __name__ == "__main__":
    from cairn_airflow.standalone import main

    dry = "--dry-run" in sys.argv[1:]
    sys.exit(main(dag, logical_dates=[datetime.now(timezone.utc)], run_conf={"dry_run": dry}))
