"""`Repository`: a catalog plus a store, and the verbs on versions."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from . import search
from .catalog import Catalog, access, lineage, records, sqlite_url
from .catalog import retention as retention_rows
from .catalog.jsondoc import document
from .catalog.runrecords import RunRecords
from .engine import blocks
from .engine.artifact import Artifact
from .engine.cache import Cache
from .engine.contents import Contents
from .engine.distributed import finish, upsert
from .engine.events import Callback, Listeners, Subscription
from .engine.export import ExportReport, export_into
from .engine.gc import DEFAULT_GRACE, GCReport, collect
from .engine.identity import Identity
from .engine.log import log
from .engine.objects import Objects
from .engine.progress import NoProgress, Progress
from .engine.references import Sources
from .engine.retain import RetentionReport, policy_for
from .engine.retain import retain as apply_retention
from .engine.retain import scope as retain_scope
from .engine.staging import Written
from .engine.statcache import StatCache
from .engine.storeconfig import StoreConfig
from .engine.storelog import StoreLog
from .engine.versionrecords import VersionRecords
from .foundation.errors import CairnError, Conflict, NotFound
from .foundation.manifest import Diff
from .foundation.names import LATEST, Ref, check_name, check_user_alias
from .foundation.projects import ProjectInfo, Right, store_move_note
from .foundation.retention import RetentionPolicy
from .run import Run, Runs
from .search import RunKeys
from .storage import Store, open_store
from .version import ArtifactVersion, VersionServices


class Repository:
    """Open with `Repository.open()`; every argument falls back to CAIRN_* variables."""

    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        *,
        home: str,
        cache_dir: str | None = None,
        default_project: str = "default",
        progress: Progress | None = None,
        concurrency: int | None = None,
        storage_options: dict[str, Any] | None = None,
        plugins: bool = True,
    ):
        self.catalog = catalog
        self.store = store
        #: the catalog side of runs, the narrow service `Run` handles work through
        self.run_records = RunRecords(catalog)
        # every catalog write records its change in the store first (docs/FORMAT.md)
        catalog.journal = StoreLog(store)
        #: where reference entries are read from; on the store's scheme, with its options
        self.reference_sources = Sources.for_store(store.url, storage_options)
        self.home = home
        self.default_project = check_name(default_project, kind="project")
        self.progress: Progress = progress or NoProgress()
        self.concurrency = concurrency
        #: store and catalog belong to one repository, checked before the first write
        self.identity = Identity(catalog, store)
        catalog.before_write = self.identity.require
        self.chunking = (self.identity.config or StoreConfig()).chunking
        #: what this machine remembers of logged files (path, size, mtime -> digests)
        #: and of where versions keep their objects: unchanged files are not read again
        self.statcache = StatCache(os.path.join(home, "statcache.db"), self.chunking.key())
        #: who hears about changes (`on`); `plugins=False` leaves the installed ones out
        self.listeners = Listeners(self, plugins=plugins)
        #: versions' manifests and files, read from the catalog, the cache and the store
        self.contents = Contents(
            catalog,
            store,
            cache_dir=cache_dir or os.path.join(home, "cache"),
            progress=self.progress,
            concurrency=concurrency,
            sources=self.reference_sources,
        )
        #: the catalog side of versions: edits, deletes, draft leases
        self.version_records = VersionRecords(catalog, self.listeners)
        #: what every `ArtifactVersion` handle this repository gives out works through
        self.version_services = VersionServices(
            self.contents, self.version_records, Runs(self, self.run_records)
        )

    @classmethod
    def open(
        cls,
        catalog: str | None = None,
        store: str | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        home: str | None = None,
        project: str | None = None,
        progress: Progress | None = None,
        concurrency: int | None = None,
        plugins: bool = True,
    ) -> Repository:
        home = os.path.abspath(
            os.path.expanduser(home or os.environ.get("CAIRN_HOME") or "~/.cairn")
        )
        catalog_url = catalog or os.environ.get("CAIRN_CATALOG") or sqlite_url(home)
        store_url = store or os.environ.get("CAIRN_STORE") or os.path.join(home, "store")
        if storage_options is None and os.environ.get("CAIRN_STORAGE_OPTIONS"):
            storage_options = json.loads(os.environ["CAIRN_STORAGE_OPTIONS"])
        return cls(
            Catalog(catalog_url),
            open_store(store_url, storage_options, concurrency=concurrency),
            home=home,
            cache_dir=cache_dir or os.environ.get("CAIRN_CACHE_DIR"),
            default_project=project or os.environ.get("CAIRN_PROJECT") or "default",
            progress=progress,
            concurrency=concurrency,
            storage_options=storage_options,
            plugins=plugins,
        )

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        blocks.settle()  # no cairn:// read's block index is left being written
        self.catalog.close()
        self.store.close()
        self.statcache.close()
        self.contents.close()

    def __repr__(self) -> str:
        return f"<Repository catalog={self.catalog.engine.url!r} store={self.store.url!r}>"

    @property
    def objects(self) -> Objects:
        """The store's objects by digest, loose or packed."""
        return Objects(self.store, self.catalog)

    @property
    def cache(self) -> Cache:
        """The local download cache (`repo.cache.cleanup(max_bytes=...)`)."""
        return self.contents.cache

    # -- events (docs/EVENTS.md) -----------------------------------------------------------

    def on(self, event: str, callback: Callback) -> Subscription:
        """Call `callback(event)` after each change named `event` is committed
        (`cairn.version.committed`, `cairn.alias.moved`, ... or `*` for all); returns a
        handle: call it to unsubscribe.

        Callbacks run in the writing thread once the catalog transaction has committed;
        one that raises is logged and neither undoes nor fails the write.
        """
        return self.listeners.on(event, callback)

    # -- logging ---------------------------------------------------------------------------

    def log_artifact(
        self,
        art: Artifact,
        *,
        project: str | None = None,
        aliases: Sequence[str] = (),
        run: Run | None = None,
    ) -> ArtifactVersion:
        """Store the artifact's new bytes and commit it as the next version.

        Identical content to a committed version of the collection returns that version
        (with `aliases` applied) instead of creating a new one.
        """
        v = self._log_artifact(art, project, aliases, run)
        if art._lease is not None:  # the draft is logged: its parent need not be held
            self.version_records.release(art._lease)
            art._lease = None
        return v

    def _log_artifact(
        self, art: Artifact, project: str | None, aliases: Sequence[str], run: Run | None
    ) -> ArtifactVersion:
        project = self._project(project)
        wanted = [check_user_alias(a) for a in aliases]
        run_id = run.id if run else None
        return self._logged(log(self, art, project=project, aliases=wanted, run_id=run_id))

    def upsert_artifact(
        self,
        art: Artifact,
        *,
        project: str | None = None,
        distributed_id: str,
        writer_id: str | None = None,
        run: Run | None = None,
    ) -> ArtifactVersion:
        """Add a part to the PENDING version `distributed_id` (DESIGN invariant 7)."""
        project = self._require(project, "write")
        return self._logged(
            upsert(self, art, project, distributed_id, writer_id, run.id if run else None)
        )

    def finish_artifact(
        self,
        art: Artifact,
        *,
        project: str | None = None,
        distributed_id: str,
        aliases: Sequence[str] = (),
        run: Run | None = None,
    ) -> ArtifactVersion:
        """Commit the PENDING version `distributed_id` with every part (and `art`'s files)."""
        project = self._require(project, "write")
        return self._logged(
            finish(self, art, project, distributed_id, aliases, run.id if run else None)
        )

    # -- reading ----------------------------------------------------------------------------

    def artifact(self, ref: str) -> ArtifactVersion:
        """The version a ref names: `project/name:alias`, `project/name:v3`, `name`."""
        parsed = Ref.parse(ref, default_project=self.default_project)
        with self.catalog.read() as conn:
            access.require(conn, parsed.project, "read")
            row = records.resolve(conn, parsed)
            return self._handle(row, records.aliases_of(conn, [row.id])[row.id])

    def versions(self, name: str, *, include_deleted: bool = False) -> list[ArtifactVersion]:
        """Versions of a collection (`project/name` or `name`), newest first."""
        parsed = Ref.parse(name, default_project=self.default_project)
        with self.catalog.read() as conn:
            access.require(conn, parsed.project, "read")
            coll = records.collection(conn, parsed.project, parsed.name)
            rows = records.list_versions(conn, coll.id, include_deleted=include_deleted)
            tags = records.aliases_of(conn, [r.id for r in rows])
        return [self._handle(r, tags[r.id]) for r in rows]

    def diff(self, a: str, b: str) -> Diff:
        """Paths added, removed and modified going from version `a` to version `b`."""
        return Diff.between(self.artifact(a).manifest, self.artifact(b).manifest)

    def project(self, name: str) -> ProjectInfo:
        """A project's settings, members and the caller's access (docs/ACCESS.md)."""
        with self.catalog.read() as conn:
            return access.project_info(conn, check_name(name, kind="project"))

    def create_project(self, name: str, *, visibility: str = "private") -> ProjectInfo:
        """Create a project (Conflict if it exists); its creator becomes its admin."""
        with self.catalog.write() as conn:
            access.create_project(conn, check_name(name, kind="project"), visibility)
        return self.project(name)

    def set_visibility(self, project: str, visibility: str) -> ProjectInfo:
        """Make a project private, public or open (its admins may).

        Existing versions keep their bytes in the store namespace they were logged to;
        new ones go to the new visibility's. When that moves, the result's `note` says so.
        """
        with self.catalog.write() as conn:
            before = access.set_visibility(conn, check_name(project, kind="project"), visibility)
        info = self.project(project)
        return replace(info, note=store_move_note(project, before, visibility))

    def grant(self, project: str, principal: str, role: str = "reader") -> ProjectInfo:
        """Give a database user or group a role on a project: reader, writer or admin."""
        with self.catalog.write() as conn:
            access.grant(conn, check_name(project, kind="project"), principal, role)
        return self.project(project)

    def revoke(self, project: str, principal: str) -> ProjectInfo:
        """Take a user's or group's role on a project away."""
        with self.catalog.write() as conn:
            access.revoke(conn, check_name(project, kind="project"), principal)
        return self.project(project)

    def projects(self) -> list[str]:
        with self.catalog.read() as conn:
            return [r.name for r in records.list_projects(conn)]

    def collections(self, project: str | None = None) -> list[dict[str, Any]]:
        """Collections with their type and number of live versions."""
        with self.catalog.read() as conn:
            if project is not None:
                access.require(conn, project, "read")
            rows = records.list_collections(conn, project)
        return [
            {"project": r.project, "name": r.name, "type": r.type, "versions": r.versions}
            for r in rows
        ]

    # -- runs -------------------------------------------------------------------------------

    def run(
        self,
        *,
        project: str | None = None,
        name: str | None = None,
        job_type: str | None = None,
        group: str | None = None,
        kind: str = "manual",
        run_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Run:
        """Start a run; `with repo.run(...) as run:` finishes it. A known `run_id` resumes it.

        `config` (a JSON object: hyperparameters, inputs) is searchable as `config.<key>`;
        resuming a run with a config sets those keys and keeps the others.
        """
        project = self._project(project)
        settings = document(config, what="config") if config is not None else None
        with self.catalog.write() as conn:
            access.require(conn, project, "write")
            pid = records.project_id(conn, project, create=True)
            rid = lineage.create_run(
                conn,
                pid,
                name=name,
                job_type=job_type,
                group=group,
                kind=kind,
                attributes=attributes or {},
                run_id=run_id,
                config=settings,
            )
            row = lineage.get_run(conn, rid)
        return self.version_services.runs.handle(row, project)

    def get_run(self, run_id: str) -> Run:
        """A recorded run by its id (NotFound if there is none the caller may read)."""
        run = self.version_services.runs.get(run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        return run

    # -- search (docs/SEARCH.md) ------------------------------------------------------------

    def search_versions(
        self,
        query: str = "",
        *,
        project: str | None = None,
        name: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        params: Mapping[str, Any] | None = None,
    ) -> list[ArtifactVersion]:
        """Versions matching `query`, e.g. "metadata.accuracy > 0.9 AND type = 'model'".

        In `project`, else in every project the caller may read; of collection `name` (in
        `project`) if given. `order_by` is a field, `-` first for descending
        (`-metadata.accuracy`); newest first by default and between ties. `limit` and
        `offset` page through the results (`count_versions` gives the total); `params`
        fills `:name` placeholders in the query. Versions marked DELETED are left out
        unless the query names `state`.
        """
        return search.search_versions(
            self,
            query,
            project=project,
            name=name,
            order_by=order_by,
            limit=limit,
            offset=offset,
            params=params,
        )

    def count_versions(
        self,
        query: str = "",
        *,
        project: str | None = None,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """How many versions `search_versions` would return without a limit."""
        return search.count_versions(self, query, project=project, name=name, params=params)

    def version_keys(
        self,
        query: str = "",
        *,
        project: str | None = None,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[str, ...]:
        """Every metadata key (nested ones as `a.b`) of the versions `query` matches."""
        return search.version_keys(self, query, project=project, name=name, params=params)

    def search_runs(
        self,
        query: str = "",
        *,
        project: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        params: Mapping[str, Any] | None = None,
    ) -> list[Run]:
        """Runs matching `query`, e.g. "group = 'sweep-1' AND summary.val_loss < 0.3".

        The best run of a sweep: `search_runs("group = :g", params={"g": group},
        order_by="-summary.val_acc", limit=1)`. Arguments as for `search_versions`.
        """
        return search.search_runs(
            self,
            query,
            project=project,
            order_by=order_by,
            limit=limit,
            offset=offset,
            params=params,
        )

    def count_runs(
        self,
        query: str = "",
        *,
        project: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """How many runs `search_runs` would return without a limit."""
        return search.count_runs(self, query, project=project, params=params)

    def run_keys(
        self,
        query: str = "",
        *,
        project: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> RunKeys:
        """Every config and summary key of the runs `query` matches (table columns)."""
        return search.run_keys(self, query, project=project, params=params)

    # -- maintenance ------------------------------------------------------------------------

    def gc(self, *, dry_run: bool = False, grace: float | timedelta = DEFAULT_GRACE) -> GCReport:
        """Delete objects no live (committed or pending) version or writer needs.

        Only in store namespaces this catalog owns, only objects and manifests last
        written more than `grace` ago (seconds or a timedelta; default one hour: a writer
        working from another process's view may be about to commit younger ones), and
        only after recording what goes under `gc/` in the store. Refused when the store
        belongs to another repository (docs/FORMAT.md).
        """
        seconds = grace.total_seconds() if isinstance(grace, timedelta) else float(grace)
        if seconds < 0:
            raise CairnError("the grace period must be zero or more")
        self.identity.require("run gc")
        with self.catalog.read() as conn:
            access.require_maintenance(conn, "run gc")
        return collect(self, dry_run=dry_run, grace=seconds)

    def export(self, what: str, *, to: Repository) -> ExportReport:
        """Copy a project, a collection (`project/name`) or one version (`project/name:v3`)
        into another repository `to`, keeping version numbers, aliases, metadata,
        descriptions, lineage, visibility and members, and sending only the objects it
        lacks. Conflict (nothing written) if `to` uses one of the numbers for other
        content (docs/EXPORT.md)."""
        return export_into(self, what, to)

    def verify(
        self, ref: str | None = None, *, repair: bool = False, folders: Sequence[str] = ()
    ) -> Any:
        """Re-read the store and report missing or corrupt objects, with every version
        that needs one; drop cache files that no longer match. With `repair`, store a
        good copy of each bad object found on this machine (the cache, files logged
        from here, `folders`)."""
        from .engine.repair import repair as repair_objects
        from .engine.verify import verify

        # verify records what it finds bad in the catalog: against another repository's
        # store it would mark every object damaged
        self.identity.require("verify the store" + (" or repair it" if repair else ""))
        if ref is not None:
            targets = [self.artifact(ref)]
        else:
            targets = [
                v
                for c in self.collections()
                for v in self.versions(f"{c['project']}/{c['name']}")
                if v.state == "COMMITTED"
            ]
        report = verify(self, targets, whole=ref is None)
        if repair and report.bad:
            repair_objects(self, report, folders, self.statcache)
        return report

    def verify_catalog(self, *, reconcile: bool = False) -> Any:
        """Compare the catalog with the store log; one line per difference. With
        `reconcile`, first apply what the log holds and the catalog lacks (a record whose
        catalog commit never happened)."""
        from .engine.recover import verify_catalog

        with self.catalog.read() as conn:
            access.require_maintenance(conn, "check the catalog against the store")
        return verify_catalog(self.store, self.catalog, reconcile=reconcile)

    def recover(self, *, into: str | None = None) -> Any:
        """Rebuild the catalog (or the one at `into`) from the store alone: every version,
        alias, run, project and access setting its log holds. A catalog that is not empty
        must be this repository's (it is reconciled); any other is refused."""
        from .engine.recover import recover

        if into is None:
            return recover(self.store, self.catalog)
        target = Catalog(into)
        try:
            return recover(self.store, target)
        finally:
            target.close()

    def compact_log(self) -> Any:
        """Fold the store log's records into one snapshot per namespace, so reading it
        (recover, verify --catalog) stays fast; safe beside writers."""
        from .engine.storelog import compact

        return compact(self.store)

    def prune(self, name: str, *, keep: int, dry_run: bool = False) -> list[ArtifactVersion]:
        """Delete versions without aliases beyond the newest `keep`; returns what went."""
        if keep < 0:
            raise CairnError("--keep must be zero or more")
        if not dry_run:
            self.identity.require("prune versions")
        committed = [v for v in self.versions(name) if v.state == "COMMITTED"]
        doomed = [v for v in committed[keep:] if not [a for a in v.aliases if a != LATEST]]
        if dry_run:
            return doomed
        gone = []
        for v in doomed:
            try:
                v.delete()  # refuses a version given a protected alias meanwhile
            except Conflict:
                continue
            gone.append(v)
        return gone

    # -- retention (docs/RETENTION.md) ------------------------------------------------------

    def set_retention(
        self,
        target: str,
        policy: RetentionPolicy | None = None,
        *,
        keep_last: int | None = None,
        keep_younger: str | timedelta | None = None,
        keep_aliased: bool | Sequence[str] = False,
        keep_used: str | timedelta | None = None,
        protect: Sequence[str] | None = None,
    ) -> RetentionPolicy:
        """Declare the retention policy of a project (`"demo"`) or a collection
        (`"demo/mnist"`), replacing any it had: give a `RetentionPolicy` or its rules.

        `repo.set_retention("demo", keep_last=10, keep_used="30d", keep_aliased=True)`
        """
        if policy is None:
            policy = RetentionPolicy(
                keep_last=keep_last,
                keep_younger=keep_younger,  # type: ignore[arg-type]  # parsed on creation
                keep_aliased=keep_aliased
                if isinstance(keep_aliased, bool)
                else tuple(keep_aliased),
                keep_used=keep_used,  # type: ignore[arg-type]
                protect=tuple(protect) if protect is not None else None,
            )
        project, name = retain_scope(target)
        with self.catalog.write() as conn:
            access.require(conn, project, "admin")
            pid = records.project_id(conn, project)
            cid = records.collection(conn, project, name).id if name is not None else None
            retention_rows.put(conn, pid, cid, policy)
        return policy.at(project, name)

    def retention(self, target: str, *, effective: bool = False) -> RetentionPolicy | None:
        """The policy declared for a project or collection (None if none); with
        `effective`, the one `retain` applies there: a collection's own, else its project's
        (with the protected aliases resolved into `protect`)."""
        project, name = retain_scope(target)
        with self.catalog.read() as conn:
            access.require(conn, project, "read")
            if effective:
                policy, protected = policy_for(conn, project, name)
                return replace(policy, protect=protected) if policy is not None else None
            pid = records.project_id(conn, project)
            cid = records.collection(conn, project, name).id if name is not None else None
            found = retention_rows.of(conn, pid, cid)
        return found.at(project, name) if found is not None else None

    def retention_policies(self, project: str | None = None) -> list[RetentionPolicy]:
        """Every declared policy (of `project`), each project's before its collections'."""
        with self.catalog.read() as conn:
            if project is not None:
                access.require(conn, check_name(project, kind="project"), "read")
                records.project_id(conn, project)
            return retention_rows.declared(conn, project)

    def protected_aliases(self, target: str) -> tuple[str, ...]:
        """The aliases no command deletes a version of, in a project or collection."""
        project, name = retain_scope(target)
        with self.catalog.read() as conn:
            access.require(conn, project, "read")
            return policy_for(conn, project, name)[1]

    def remove_retention(self, target: str) -> bool:
        """Remove a project's or collection's policy; False if it had none."""
        project, name = retain_scope(target)
        with self.catalog.write() as conn:
            access.require(conn, project, "admin")
            pid = records.project_id(conn, project)
            cid = records.collection(conn, project, name).id if name is not None else None
            return retention_rows.remove(conn, pid, cid)

    def retain(self, target: str | None = None, *, dry_run: bool = False) -> RetentionReport:
        """Apply every retention policy (of a project or collection, if given): mark the
        versions no keep rule keeps DELETED, and report them with the bytes `gc` would then
        free. With `dry_run`, change nothing and report what would go."""
        return apply_retention(self, target, dry_run=dry_run)

    # -- internals -------------------------------------------------------------------------

    def _project(self, project: str | None) -> str:
        return check_name(self.default_project if project is None else project, kind="project")

    def _require(self, project: str | None, right: Right) -> str:
        """The project's name, if the caller holds `right` on it (PermissionDenied if not)."""
        name = self._project(project)
        with self.catalog.read() as conn:
            access.require(conn, name, right)
        return name

    def _logged(self, written: Written) -> ArtifactVersion:
        """The version a log, upsert or finish returns, with what it cost."""
        if written.found is not None:
            v = self._handle(*written.found)
        else:
            v = self._version_by_id(written.version_id)
        v.last_log = written.stats
        v.created = written.created
        return v

    def _version_by_id(self, version_id: int) -> ArtifactVersion:
        return self._handle(*self.version_records.get(version_id))

    def _handle(self, row: Any, aliases: list[str]) -> ArtifactVersion:
        return ArtifactVersion(row, aliases, self.version_services)


def recover(
    *,
    store: str,
    catalog: str,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """Rebuild the catalog at URL `catalog` from the store at `store` alone (see
    `Repository.recover`); returns a `RecoverReport`."""
    from .engine.recover import recover as rebuild

    target = Catalog(catalog)
    source = open_store(store, storage_options)
    try:
        return rebuild(source, target)
    finally:
        target.close()
        source.close()
