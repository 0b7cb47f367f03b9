"""A daily incremental dataset: each run adds one day's files to the latest version.

`log_artifact(..., incremental=True)` starts from `demo/sessions:latest` (a draft: nothing
already stored is hashed or uploaded again), adds the day's batch under `sessions/DAY/`, and
removes what must go: files of the batch that fail validation, plus earlier files an
operator retracts with `--drop` (absent ones are skipped). The new version's table artifact
shows the diff against the previous day's version.

Run it on the embedded default repository (`~/.cairn`, or `$CAIRN_HOME`):

    python dags_examples/prefect_daily_incremental.py --day 2024-01-01
    python dags_examples/prefect_daily_incremental.py --day 2024-01-02 \
        --drop sessions/2024-01-01/part-1.jsonl
    cairn diff demo/sessions:v0 demo/sessions:v1

Exits non-zero when the flow fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from prefect import flow, task

from cairn_prefect import log_artifact


@task
def extract_day(day: str, *, workdir: str, files: int) -> str:
    """Land the day's batch: `files` JSON-lines files. Every third day, part-2 arrives
    truncated (a line that is not JSON), as real deliveries sometimes do."""
    folder = Path(workdir) / day
    folder.mkdir(parents=True, exist_ok=True)
    ordinal = dt.date.fromisoformat(day).toordinal()
    for part in range(files):
        lines = [
            json.dumps({"day": day, "part": part, "event": i, "value": (ordinal * 31 + i) % 97})
            for i in range(50)
        ]
        if part == 2 and ordinal % 3 == 0:
            lines[-1] = lines[-1][:10]  # truncated delivery
        (folder / f"part-{part}.jsonl").write_text("\n".join(lines) + "\n")
    return str(folder)


@task
def invalid_files(folder: str, *, prefix: str) -> list[str]:
    """Logical paths (under `prefix`) of the batch's files that are not valid JSON lines."""
    bad = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        try:
            for line in path.read_text().splitlines():
                json.loads(line)
        except json.JSONDecodeError:
            bad.append(f"{prefix}/{path.name}")
    return bad


@flow(name="cairn-daily-incremental", log_prints=True)
def daily_incremental(
    day: str | None = None,
    files: int = 3,
    drop: list[str] | None = None,
    project: str = "demo",
    name: str = "sessions",
    workdir: str | None = None,
    repository: str | None = None,
) -> str:
    """Add `day`'s batch (default: today) to the latest version, minus bad and dropped files."""
    day = day or dt.date.today().isoformat()
    prefix = f"sessions/{day}"
    folder = extract_day(day, workdir=workdir or tempfile.mkdtemp(prefix="cairn-day-"), files=files)
    bad = invalid_files(folder, prefix=prefix)
    ref = log_artifact(
        folder,
        name=name,
        project=project,
        prefix=prefix,
        incremental=True,
        remove=[*bad, *(drop or [])],
        metadata={"last_day": day},
        repository=repository,
    )
    print(f"{ref}: added {day}" + (f", left out {bad}" if bad else ""))
    return ref


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", help="YYYY-MM-DD (default: today)")
    parser.add_argument("--files", type=int, default=3, help="files in the day's batch")
    parser.add_argument("--drop", action="append", default=[], help="a path to remove")
    parser.add_argument("--repository", help="name of a saved CairnRepository block")
    args = parser.parse_args(argv)
    state = daily_incremental(
        day=args.day,
        files=args.files,
        drop=args.drop,
        repository=args.repository,
        return_state=True,
    )
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
