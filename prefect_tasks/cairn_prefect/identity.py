"""Who is running: the Prefect flow run and task run, as a cairn run identity for lineage."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prefect.runtime import flow_run, task_run


@dataclass(frozen=True)
class PrefectIdentity:
    """The flow run and task run a cairn task executes in (any may be None outside them)."""

    flow_run_id: str | None
    flow_run_name: str | None
    flow_name: str | None
    task_run_id: str | None
    task_run_name: str | None
    task_name: str | None

    @classmethod
    def current(cls) -> PrefectIdentity:
        """Read `prefect.runtime` (works in worker processes of a process-based runner)."""
        return cls(
            flow_run_id=_str(flow_run.id),
            flow_run_name=_str(flow_run.name),
            flow_name=_str(flow_run.flow_name),
            task_run_id=_str(task_run.id),
            task_run_name=_str(task_run.name),
            task_name=_str(task_run.task_name),
        )

    @property
    def run_id(self) -> str | None:
        """The cairn run id: one per task run, the same for every retry of it (Prefect
        retries a task inside the same task run), so a retry resumes its cairn run."""
        if self.task_run_id:
            return "prefect-task-" + self.task_run_id.replace("-", "")
        if self.flow_run_id:
            return "prefect-flow-" + self.flow_run_id.replace("-", "")
        return None  # outside Prefect: a fresh run

    def writer_id(self, paths: Sequence[str], *inputs: Any) -> str:
        """The writer id of a part: this task's name, the first local path's name and a
        digest of every input (local paths, collection, prefix).

        Prefect gives a mapped task run no stable index (its dynamic key is random), and a
        retried or re-run flow run runs new task runs: the same task upserting the same
        inputs is the same writer in every attempt, so its part replaces the one an
        earlier attempt wrote instead of sitting beside it (or conflicting with it).
        """
        key = json.dumps([list(paths), *inputs], sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        label = os.path.basename(paths[0].rstrip("/"))[:60] if paths else ""
        return f"{(self.task_name or 'prefect')[:100]}:{label}:{digest}"

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `Repository.run` for this identity."""
        return {
            "name": self.task_run_name or self.flow_run_name,
            "job_type": self.flow_name,
            "group": self.flow_run_id,
            "kind": "prefect",
            "run_id": self.run_id,
            "attributes": {
                "flow_run_id": self.flow_run_id,
                "flow_run_name": self.flow_run_name,
                "flow_name": self.flow_name,
                "task_run_id": self.task_run_id,
                "task_run_name": self.task_run_name,
                "task_name": self.task_name,
                # where the first attempt ran: parts written from a process pool differ here
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        }


def _str(value: Any) -> str | None:
    return str(value) if value else None
