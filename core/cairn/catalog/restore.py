"""Putting store-log items back into catalog rows (recover and reconcile).

`put` takes one item (catalog/journal.py's shape) and writes the rows it describes,
inserting or updating: projects, collections and retention policies at once, runs,
versions, aliases and usages at `flush`, new rows of a kind in one statement (recovering
10,000 versions is a few statements, not 10,000). Callers put items parents first
(`ORDER`), then flush.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from .journal import forget_names, moment
from .schema import (
    aliases,
    collections,
    manifests,
    members,
    projects,
    retention_policies,
    runs,
    usages,
    versions,
)
from .sql import insert_ignore, now

#: kinds of item, parents before children
ORDER = ("project", "collection", "policy", "run", "version", "alias", "usage")


class Restorer:
    """Writes items into the catalog `conn` is a transaction of."""

    def __init__(self, conn: Connection):
        self.conn = conn
        forget_names(conn.engine)
        self._projects: dict[str, int] = {}
        self._collections: dict[str, int] = {}
        self._versions: dict[tuple[int, int], int] = {}
        self._runs: set[str] = set()
        self._pending_runs: list[tuple[str, dict[str, Any]]] = []
        self._pending_versions: list[tuple[str, dict[str, Any]]] = []
        self._pending_aliases: list[tuple[str, dict[str, Any]]] = []
        self._pending_usages: list[tuple[str, dict[str, Any]]] = []

    def put(self, key: str, item: dict[str, Any]) -> None:
        kind, _, rest = key.partition(":")
        getattr(self, f"_{kind}")(rest, item)

    def remove_alias(self, key: str) -> None:
        collection, _, name = key[len("alias:") :].rpartition(":")
        cid = self._collection_id(collection)
        if cid is not None:
            self.conn.execute(
                delete(aliases).where(aliases.c.collection_id == cid, aliases.c.name == name)
            )

    def remove_policy(self, key: str) -> None:
        where = self._policy_where(key[len("policy:") :])
        if where is not None:
            self.conn.execute(delete(retention_policies).where(where))

    def save_manifests(self, rows: list[tuple[str, str, bytes, int, int]]) -> None:
        """(project, digest, compressed body, size, file count) of each manifest."""
        at = now()
        values = [
            {
                "project_id": self._project_id(project),
                "digest": digest,
                "body": body,
                "size": size,
                "file_count": files,
                "created_at": at,
            }
            for project, digest, body, size, files in rows
        ]
        insert_ignore(self.conn, manifests, values, ["project_id", "digest"])

    # -- one method per kind of item ------------------------------------------------------------

    def _project(self, name: str, item: dict[str, Any]) -> None:
        values = {
            "visibility": item["visibility"],
            "created_at": moment(item["created_at"]),
            "created_by": item["created_by"],
        }
        pid = self._project_id(name)
        if pid is None:
            pid = self.conn.execute(
                projects.insert().values(name=name, **values).returning(projects.c.id)
            ).scalar_one()
            self._projects[name] = pid
        else:
            self.conn.execute(update(projects).where(projects.c.id == pid).values(**values))
        # the members as recorded (on PostgreSQL a trigger made the creator admin just now)
        self.conn.execute(delete(members).where(members.c.project_id == pid))
        rows = [
            {
                "project_id": pid,
                "principal": principal,
                "role": m["role"],
                "granted_by": m["granted_by"],
                "created_at": moment(m["created_at"]),
            }
            for principal, m in sorted(item["members"].items())
        ]
        if rows:
            self.conn.execute(members.insert(), rows)

    def _collection(self, key: str, item: dict[str, Any]) -> None:
        project, name = key.split("/", 1)
        values = {
            "type": item["type"],
            "created_at": moment(item["created_at"]),
            "next_index": item["next_index"],
        }
        cid = self._collection_id(key)
        if cid is None:
            pid = self._project_id(project)
            cid = self.conn.execute(
                collections.insert()
                .values(project_id=pid, name=name, **values)
                .returning(collections.c.id)
            ).scalar_one()
            self._collections[key] = cid
        else:
            self.conn.execute(update(collections).where(collections.c.id == cid).values(**values))

    def _policy(self, key: str, item: dict[str, Any]) -> None:
        """A project's (`<p>`) or collection's (`<p>/<c>`) policy, replacing the one there."""
        where = self._policy_where(key)
        if where is None:
            return  # its project or collection is not in the log (verify lists it)
        self.conn.execute(delete(retention_policies).where(where))
        project, _, collection = key.partition("/")
        self.conn.execute(
            retention_policies.insert().values(
                project_id=self._project_id(project),
                collection_id=self._collection_id(key) if collection else None,
                keep_last=item["keep_last"],
                keep_younger=item["keep_younger"],
                keep_aliased=item["keep_aliased"],
                keep_used=item["keep_used"],
                protect=item["protect"],
                updated_at=moment(item["updated_at"]),
                updated_by=item["updated_by"],
            )
        )

    def _run(self, run_id: str, item: dict[str, Any]) -> None:
        self._pending_runs.append((run_id, item))

    def _version(self, key: str, item: dict[str, Any]) -> None:
        self._pending_versions.append((key, item))

    def _alias(self, key: str, item: dict[str, Any]) -> None:
        self._pending_aliases.append((key, item))

    def _usage(self, key: str, item: dict[str, Any]) -> None:
        self._pending_usages.append((key, item))

    # -- many rows at once: one statement per kind for what is new ------------------------------

    def flush(self) -> None:
        """Write the runs, versions, aliases and usages `put` gathered (in that order)."""
        self._flush_runs()
        self._flush_versions()
        self._flush_aliases()
        self._flush_usages()

    def _flush_runs(self) -> None:
        known = set(self.conn.scalars(select(runs.c.id)))
        new: list[dict[str, Any]] = []
        old: list[dict[str, Any]] = []
        for run_id, item in self._pending_runs:
            values = {
                "project_id": self._project_id(item["project"]),
                "name": item["name"],
                "job_type": item["job_type"],
                "group_name": item["group"],
                "kind": item["kind"],
                "attributes": item["attributes"],
                "state": item["state"],
                "config": item["config"],
                "summary": item["summary"],
                "created_at": moment(item["created_at"]),
                "finished_at": moment(item["finished_at"]),
            }
            (old if run_id in known else new).append({"id": run_id, **values})
        if new:
            self.conn.execute(runs.insert(), new)
        for row in old:
            self.conn.execute(update(runs).where(runs.c.id == row.pop("id")).values(**row))
        self._runs = known | {r["id"] for r in new}
        self._pending_runs = []

    def _load_versions(self) -> None:
        rows = self.conn.execute(select(versions.c.id, versions.c.collection_id, versions.c.idx))
        self._versions = {(r.collection_id, r.idx): r.id for r in rows if r.idx is not None}

    def _flush_versions(self) -> None:
        self._load_versions()
        new: list[tuple[int | None, dict[str, Any]]] = []
        old: list[tuple[int | None, dict[str, Any]]] = []
        for key, item in self._pending_versions:
            collection, _, index = key.rpartition(":")
            cid = self._collection_id(collection)
            if cid is None:
                raise KeyError(f"collection {collection} of {key}")
            run = item["run"] if item["run"] in self._runs else None
            values = {
                "collection_id": cid,
                "idx": int(index),
                "state": item["state"],
                "digest": item["digest"],
                "namespace": item["namespace"],
                "size": item["size"],
                "file_count": item["file_count"],
                "description": item["description"],
                "metadata": item["metadata"],
                "run_id": run,  # None: its run is not in the log (verify lists it)
                "distributed_id": item["distributed_id"],
                "created_at": moment(item["created_at"]),
                "committed_at": moment(item["committed_at"]),
            }
            vid = self._versions.get((cid, int(index)))
            (new if vid is None else old).append((vid, values))
        if new:
            self.conn.execute(versions.insert(), [v for _, v in new])
        for vid, values in old:
            self.conn.execute(update(versions).where(versions.c.id == vid).values(**values))
        if new:
            self._load_versions()
        self._pending_versions = []

    def _flush_aliases(self) -> None:
        rows = []
        for key, item in self._pending_aliases:
            collection, _, name = key.rpartition(":")
            cid = self._collection_id(collection)
            vid = None if cid is None else self._versions.get((cid, int(item["version"])))
            if cid is not None and vid is not None:
                rows.append({"collection_id": cid, "name": name, "version_id": vid})
        existing = {(r.collection_id, r.name) for r in self.conn.execute(select(aliases))}
        for row in rows:
            if (row["collection_id"], row["name"]) in existing:
                self.conn.execute(
                    delete(aliases).where(
                        aliases.c.collection_id == row["collection_id"],
                        aliases.c.name == row["name"],
                    )
                )
        if rows:
            self.conn.execute(aliases.insert(), rows)
        self._pending_aliases = []

    def _flush_usages(self) -> None:
        rows = []
        for key, item in self._pending_usages:
            run, _, version = key.partition("|")
            collection, _, index = version.rpartition(":")
            cid = self._collection_id(collection)
            vid = None if cid is None else self._versions.get((cid, int(index)))
            if vid is not None and run in self._runs:
                rows.append(
                    {"run_id": run, "version_id": vid, "created_at": moment(item["created_at"])}
                )
        insert_ignore(self.conn, usages, rows, ["run_id", "version_id"])
        self._pending_usages = []

    # -- ids ------------------------------------------------------------------------------------

    def _policy_where(self, key: str) -> Any:
        """The row of policy `<p>` or `<p>/<c>`, as a condition; None if there is no such
        project or collection."""
        c = retention_policies.c
        project, _, collection = key.partition("/")
        if collection:
            cid = self._collection_id(key)
            return None if cid is None else c.collection_id == cid
        pid = self._project_id(project)
        return None if pid is None else and_(c.project_id == pid, c.collection_id.is_(None))

    def _project_id(self, name: str) -> Any:
        if name not in self._projects:
            pid = self.conn.scalar(select(projects.c.id).where(projects.c.name == name))
            if pid is None:
                return None
            self._projects[name] = pid
        return self._projects[name]

    def _collection_id(self, key: str) -> Any:
        if key not in self._collections:
            project, name = key.split("/", 1)
            pid = self._project_id(project)
            cid = None
            if pid is not None:
                cid = self.conn.scalar(
                    select(collections.c.id).where(
                        collections.c.project_id == pid, collections.c.name == name
                    )
                )
            if cid is None:
                return None
            self._collections[key] = cid
        return self._collections[key]
