"""The runs an orchestrator's tasks are running in this process: what `current_run()` of
`cairn_airflow` and `cairn_prefect` hands out.

An adapter keys each run by its cairn run id (derived from the task instance or task
run), so every call in one task returns the same `Run`; the orchestrator's own end-of-task
hook then calls `finish`, which finishes the run unless the code already did and closes
the repository the run was opened with.

`run_in_effect()` is the run that writes made now are lineage of (what `cairn://` logs
its versions by when given no `run=`): this context's (`cairn.run.entered`: the innermost
`with run:` block, or the run `current_run()` handed out in this context), else the one
run the orchestrator registries of this process hold, if they hold exactly one (an
Airflow task's run, seen from the threads its code starts, such as Dask's workers).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .foundation.errors import CairnError
from .run import Run, entered, make_current

#: every registry of this process (one per adapter: cairn_airflow's, cairn_prefect's)
_REGISTRIES: weakref.WeakSet[CurrentRuns] = weakref.WeakSet()
_REGISTERING = threading.Lock()


def run_in_effect() -> Run | None:
    """The run writes made now are lineage of: this context's, else the only running
    run this process's registries hold; None when there is none, or several (tasks
    running side by side in threads: each sees its own in its context)."""
    run = entered()
    if run is not None:
        return run
    with _REGISTERING:
        registries = list(_REGISTRIES)
    held = {r for registry in registries for r in registry.running()}
    return held.pop() if len(held) == 1 else None


class CurrentRuns:
    """Runs by id, each with the function that closes what it was opened with. A run
    handed out (`add`, `get`) becomes the current run of the caller's context."""

    def __init__(self, noun: str):
        self._noun = noun  # "task" or "task run", for messages
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[Run, Callable[[], None]]] = {}
        with _REGISTERING:
            _REGISTRIES.add(self)

    def get(
        self, run_id: str, *, project: str | None, config: Mapping[str, Any] | None
    ) -> Run | None:
        """The run already handed out under `run_id` (with `config`'s keys added), or None.

        Asking for another project than the run's is an error: the run id names one run.
        """
        with self._lock:
            known = self._runs.get(run_id)
        if known is None:
            return None
        run = known[0]
        if project is not None and project != run.project:
            raise CairnError(
                f"this {self._noun}'s cairn run is in project {run.project}, not {project}: "
                f"pass the same project to every current_run() call of a {self._noun}"
            )
        if config:
            run.log_config(config)
        make_current(run)
        return run

    def add(self, run: Run, close: Callable[[], None]) -> Run:
        with self._lock:
            self._runs[run.id] = (run, close)
        make_current(run)
        return run

    def running(self) -> list[Run]:
        """The runs held here that have not finished."""
        with self._lock:
            return [run for run, _ in self._runs.values() if run.state == "running"]

    def finish(self, run_id: str, state: str) -> None:
        """Finish the run (unless the code already did: `with current_run() as run:`) and
        close what it was opened with. Runs this process does not hold are left alone."""
        with self._lock:
            known = self._runs.pop(run_id, None)
        if known is None:
            return
        run, close = known
        try:
            if run.state == "running":
                run.finish(state)
        finally:
            close()
