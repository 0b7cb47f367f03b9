"""Nightly maintenance: apply the retention policies, then free the bytes with `gc`.

    python dags_examples/prefect_maintenance.py             # one run now
    python dags_examples/prefect_maintenance.py --dry-run   # only report what would go
    python dags_examples/prefect_maintenance.py --serve     # every night at 03:00

runs on a saved `CairnRepository` block (`--repository NAME`), else the embedded default
(~/.cairn or $CAIRN_HOME). Declare the policies once, e.g.

    cairn retention set demo --keep-last 10 --keep-aliased --keep-used 30d

`retain_versions` marks the versions no policy keeps DELETED (never one holding a
protected alias such as `production`, never one a writer or a running task has in use);
`collect_garbage` then deletes the bytes no version needs. Each publishes a Prefect
markdown artifact with its report. `grace` (default `1h`) is gc's grace period: objects
written more recently stay, since a writer may be about to commit them. On a PostgreSQL
catalog the block's role must own the catalog (or have BYPASSRLS): both steps see every
project's versions and writers' leases.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from cairn.foundation.durations import parse_duration
from cairn_prefect import CairnRepository

NIGHTLY = "0 3 * * *"


def _block(repository: CairnRepository | str | None) -> CairnRepository:
    if isinstance(repository, str):
        return CairnRepository.load(repository)
    return repository or CairnRepository()


@task
def retain_versions(
    repository: CairnRepository | str | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Apply every retention policy; what went (or would) and what gc would free."""
    with _block(repository).get_repository() as repo:
        report = repo.retain(dry_run=dry_run)
    print(report)
    create_markdown_artifact(
        key="cairn-retain", markdown=f"```\n{report}\n```", description="cairn retain"
    )
    return {
        "dry_run": dry_run,
        "deleted": [d.ref for d in report.deleted],
        "in_use": list(report.in_use),
        "kept": report.kept,
        "gc_bytes": report.gc_bytes,
    }


@task
def collect_garbage(
    repository: CairnRepository | str | None = None, dry_run: bool = False, grace: str = "1h"
) -> dict[str, Any]:
    """Delete the stored objects no live version needs (only count them on a dry run),
    but those written within the grace period."""
    with _block(repository).get_repository() as repo:
        report = repo.gc(dry_run=dry_run, grace=parse_duration(grace))
    print(report)
    create_markdown_artifact(key="cairn-gc", markdown=f"```\n{report}\n```", description="cairn gc")
    return {
        "dry_run": report.dry_run,
        "objects_deleted": report.objects_deleted,
        "bytes_freed": report.bytes_freed,
    }


@flow(name="cairn-maintenance", log_prints=True)
def maintenance(
    repository: str | None = None, dry_run: bool = False, grace: str = "1h"
) -> dict[str, Any]:
    """Retention, then garbage collection (which waits for it)."""
    retained = retain_versions(repository, dry_run)
    collected = collect_garbage(repository, dry_run, grace, wait_for=[retained])
    return {"retain": retained, "gc": collected}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="name of a saved CairnRepository block")
    parser.add_argument("--dry-run", action="store_true", help="change nothing")
    parser.add_argument("--grace", default="1h", help="gc keeps objects younger than this")
    parser.add_argument("--serve", action="store_true", help=f"run on cron {NIGHTLY!r}")
    args = parser.parse_args(argv)
    if args.serve:
        maintenance.serve(
            name="nightly",
            cron=NIGHTLY,
            parameters={
                "repository": args.repository,
                "dry_run": args.dry_run,
                "grace": args.grace,
            },
        )
        return 0
    state = maintenance(
        repository=args.repository, dry_run=args.dry_run, grace=args.grace, return_state=True
    )
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
