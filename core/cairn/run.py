"""`Run`: who produced or consumed versions (a task instance, a task run, a CLI call)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .engine.artifact import Artifact
from .foundation.errors import InvalidName, NotFound
from .foundation.names import Ref

if TYPE_CHECKING:
    from .catalog.runrecords import RunRecords
    from .repository import Repository
    from .version import ArtifactVersion

#: the run the code running in this context runs as: entered with `with run:` (reset
#: when the block ends) or handed out by an orchestrator's `current_run()` (`make_current`)
_CURRENT: ContextVar[Run | None] = ContextVar("cairn_current_run", default=None)


def entered() -> Run | None:
    """The run of this context (thread, asyncio task): the innermost `with run:` block,
    or the run an orchestrator's `current_run()` handed out here; None if there is none
    or it has finished. `cairn.current.run_in_effect` adds runs held for other threads."""
    run = _CURRENT.get()
    return run if run is not None and run.state == "running" else None


def make_current(run: Run) -> None:
    """Make `run` this context's run until a `with` block enters another or the context
    ends: for runs with no block of their own (an orchestrator's task run)."""
    _CURRENT.set(run)


class Run:
    """A context manager: finished on exit, marked failed if the block raised. Inside
    the block it is this context's current run (`entered`): files written through
    `cairn://` without a `run=` are logged by it.

    Its own row goes through `records` (the catalog side of runs); versions through the
    repository's public API.
    """

    def __init__(self, repo: Repository, row: Any, project: str, records: RunRecords):
        self._repo = repo
        self._records = records
        self.id: str = row.id
        self.project = project
        self.name: str | None = row.name
        self.job_type: str | None = row.job_type
        self.group: str | None = row.group_name
        self.kind: str = row.kind
        self.attributes: dict[str, Any] = dict(row.attributes or {})
        self.state: str = row.state
        self.created_at: datetime = row.created_at
        self.finished_at: datetime | None = row.finished_at
        self._config: dict[str, Any] = dict(row.config or {})
        self._summary: dict[str, Any] = dict(row.summary or {})
        self._entered: list[Token[Run | None]] = []  # one per `with` block open on it

    @property
    def repository(self) -> Repository:
        """The repository this run records into."""
        return self._repo

    def __repr__(self) -> str:
        return f"<Run {self.kind}:{self.name or self.id} in {self.project} ({self.state})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __enter__(self) -> Run:
        self._entered.append(_CURRENT.set(self))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.finish("failed" if exc_type else "finished")
        finally:
            if self._entered:
                # a block left in another context than it was entered in (an asyncio
                # task's): that context keeps pointing at this run, finished, so unused
                with contextlib.suppress(ValueError):
                    _CURRENT.reset(self._entered.pop())

    def finish(self, state: str = "finished") -> None:
        self._records.finish(self.id, state)
        self.state = state

    # -- config and metrics ----------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """What the run was configured with (`repo.run(config=...)`): a copy."""
        return dict(self._config)

    @property
    def summary(self) -> dict[str, Any]:
        """The metrics the run reported (`log_summary`), as of the last call or `refresh()`:
        a copy; change it with `log_summary`."""
        return dict(self._summary)

    def log_summary(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Set these keys of the run's summary and keep the others (`{"val_loss": 0.21}`);
        returns the whole summary. Searchable as `summary.val_loss`. Keys logged by
        other processes meanwhile are kept: the merge happens in the catalog."""
        self._summary = self._records.merge(self.project, self.id, "summary", values)
        return self.summary

    def log_config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Set these keys of the run's config and keep the others; returns the whole
        config (for settings known only once the run has started)."""
        self._config = self._records.merge(self.project, self.id, "config", values)
        return self.config

    def refresh(self) -> Run:
        """Read state, config and summary again (another process may have changed them)."""
        found = self._records.get(self.id)
        if found is not None:
            row = found[0]
            self.state, self.finished_at = row.state, row.finished_at
            self._config, self._summary = dict(row.config or {}), dict(row.summary or {})
        return self

    # -- artifacts through this run --------------------------------------------------------

    def use_artifact(self, ref: str) -> ArtifactVersion:
        """Resolve a ref (`name:alias` means this run's project) and record the use.

        A version deleted between the two (by `retain`, say) is resolved again: an alias
        names its new version then, and `:v3` is not found."""
        full = str(Ref.parse(ref, default_project=self.project))
        for attempt in range(3):
            v = self._repo.artifact(full)
            try:
                self._records.record_use(self.id, v.id)
            except NotFound:
                if attempt == 2:
                    raise
                continue
            return v
        raise AssertionError("unreachable")

    def log_artifact(
        self, art: Artifact, *, aliases: list[str] | tuple[str, ...] = ()
    ) -> ArtifactVersion:
        return self._repo.log_artifact(art, project=self.project, aliases=aliases, run=self)

    def upsert_artifact(
        self, art: Artifact, *, distributed_id: str | None = None, writer_id: str | None = None
    ) -> ArtifactVersion:
        """Add this run's part to the pending version `distributed_id` (default: the group)."""
        return self._repo.upsert_artifact(
            art,
            project=self.project,
            distributed_id=distributed_id or self._group_id(),
            writer_id=writer_id or self.id,
            run=self,
        )

    def finish_artifact(
        self,
        art: Artifact,
        *,
        distributed_id: str | None = None,
        aliases: list[str] | tuple[str, ...] = (),
    ) -> ArtifactVersion:
        """Commit the pending version `distributed_id` (default: the group)."""
        return self._repo.finish_artifact(
            art,
            project=self.project,
            distributed_id=distributed_id or self._group_id(),
            aliases=aliases,
            run=self,
        )

    def logged_artifacts(self) -> list[ArtifactVersion]:
        return self._versions(self._records.logged_by(self.id))

    def used_artifacts(self) -> list[ArtifactVersion]:
        return self._versions(self._records.used_by(self.id))

    def contributed_artifacts(self) -> list[ArtifactVersion]:
        """Distributed versions this run upserted parts into (pending or committed)."""
        return self._versions(self._records.contributed_by(self.id))

    def _versions(self, rows: list[tuple[Any, list[str]]]) -> list[ArtifactVersion]:
        from .version import ArtifactVersion

        services = self._repo.version_services
        return [ArtifactVersion(row, aliases, services) for row, aliases in rows]

    def _group_id(self) -> str:
        if not self.group:
            raise InvalidName("no distributed_id given and the run has no group; pass one of them")
        return self.group


@dataclass(frozen=True)
class Runs:
    """Run handles over the catalog's runs: what a version asks for its lineage (who
    logged it, used it, contributed parts to it), handed out without `Repository`'s
    internals. A run handle records into `repository`, so it is built with it."""

    repository: Repository
    records: RunRecords

    def handle(self, row: Any, project: str) -> Run:
        return Run(self.repository, row, project, self.records)

    def get(self, run_id: str) -> Run | None:
        """The run, or None if it belongs to a project the caller may not read."""
        found = self.records.get(run_id)
        return self.handle(*found) if found is not None else None

    def users_of(self, version_id: int) -> list[Run]:
        """Runs that used the version, oldest first."""
        return [self.handle(row, p) for row, p in self.records.users_of(version_id)]

    def contributors_of(self, version_id: int) -> list[Run]:
        """Runs that upserted parts into the (distributed) version."""
        return [self.handle(row, p) for row, p in self.records.contributors_of(version_id)]
