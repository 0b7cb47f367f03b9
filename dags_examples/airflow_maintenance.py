"""Nightly maintenance: apply the retention policies, then free the bytes with `gc`.

    python dags_examples/airflow_maintenance.py            # one run, with dag.test()
    python dags_examples/airflow_maintenance.py --dry-run  # only report what would go
    python dags_examples/airflow_maintenance.py --now      # gc without a grace period

runs on the repository of the `cairn_default` connection (else the embedded default,
~/.cairn or $CAIRN_HOME). Declare the policies once, e.g.

    cairn retention set demo --keep-last 10 --keep-aliased --keep-used 30d

`retain` marks the versions no policy keeps DELETED (never one holding a protected alias
such as `production`, never one a writer or a running task has in use) and reports them;
`gc` then deletes the bytes no version needs any more. Both return plain summaries via
XCom. On a PostgreSQL catalog, run it with a connection whose role owns the catalog (or
has BYPASSRLS): both steps must see every project's versions and writers' leases.
Trigger it with `{"dry_run": true}` to see what would go without changing anything.
`grace` (default `1h`) is gc's grace period: objects written more recently stay, since a
writer may be about to commit them (`0` frees everything no version needs, for a store
no one else writes to at the time).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task

from cairn.foundation.durations import parse_duration
from cairn_airflow import CairnHook

with DAG(
    dag_id="cairn_maintenance",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,  # two maintenance runs at once would only repeat each other
    params={
        "dry_run": Param(False, type="boolean", description="Change nothing"),
        "grace": Param("1h", type="string", description="gc keeps objects younger than this"),
    },
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
            grace = parse_duration(str(get_current_context()["params"]["grace"]))
            report = hook.get_repository().gc(dry_run=retained["dry_run"], grace=grace)
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
    conf = {"dry_run": dry, "grace": "0" if "--now" in sys.argv[1:] else "1h"}
    sys.exit(main(dag, logical_dates=[datetime.now(timezone.utc)], run_conf=conf))
