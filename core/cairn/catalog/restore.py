"""Putting store-log items back into catalog rows (recover and reconcile).

`put` writes one item (catalog/journal.py's shape) as the rows it describes, inserting
or updating; `Restorer` remembers the ids it looked up, so restoring 10,000 versions
costs a statement or two each. Callers order items parents first (`ORDER`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select, update

from .journal import moment
from .schema import aliases, collections, manifests, members, projects, runs, usages, versions
from .sql import insert_ignore, now

#: kinds of item, parents before children
ORDER = ("project", "collection", "run", "version", "alias", "usage")


class Restorer:
    """Writes items into the catalog `conn` is a transaction of."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._projects: dict[str, int] = {}
        self._collections: dict[str, int] = {}
        self._versions: dict[tuple[int, int], int] = {}

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

    def save_manifest(self, project: str, digest: str, body: bytes, size: int, files: int) -> None:
        row = {
            "project_id": self._project_id(project),
            "digest": digest,
            "body": body,
            "size": size,
            "file_count": files,
            "created_at": now(),
        }
        insert_ignore(self.conn, manifests, row, ["project_id", "digest"])

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

    def _run(self, run_id: str, item: dict[str, Any]) -> None:
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
        known = self.conn.scalar(select(runs.c.id).where(runs.c.id == run_id))
        if known is None:
            self.conn.execute(runs.insert().values(id=run_id, **values))
        else:
            self.conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def _version(self, key: str, item: dict[str, Any]) -> None:
        collection, _, index = key.rpartition(":")
        cid = self._collection_id(collection)
        if cid is None:
            raise KeyError(f"collection {collection} of {key}")
        run = item["run"]
        if run is not None and self.conn.scalar(select(runs.c.id).where(runs.c.id == run)) is None:
            run = None  # its run is not in the log (verify lists the difference)
        values = {
            "state": item["state"],
            "digest": item["digest"],
            "namespace": item["namespace"],
            "size": item["size"],
            "file_count": item["file_count"],
            "description": item["description"],
            "metadata": item["metadata"],
            "run_id": run,
            "distributed_id": item["distributed_id"],
            "created_at": moment(item["created_at"]),
            "committed_at": moment(item["committed_at"]),
        }
        vid = self._version_id(cid, int(index))
        if vid is None:
            vid = self.conn.execute(
                versions.insert()
                .values(collection_id=cid, idx=int(index), **values)
                .returning(versions.c.id)
            ).scalar_one()
            self._versions[(cid, int(index))] = vid
        else:
            self.conn.execute(update(versions).where(versions.c.id == vid).values(**values))

    def _alias(self, key: str, item: dict[str, Any]) -> None:
        collection, _, name = key.rpartition(":")
        cid = self._collection_id(collection)
        vid = None if cid is None else self._version_id(cid, int(item["version"]))
        if cid is None or vid is None:
            return
        self.conn.execute(
            delete(aliases).where(aliases.c.collection_id == cid, aliases.c.name == name)
        )
        self.conn.execute(aliases.insert().values(collection_id=cid, name=name, version_id=vid))

    def _usage(self, key: str, item: dict[str, Any]) -> None:
        run, _, version = key.partition("|")
        collection, _, index = version.rpartition(":")
        cid = self._collection_id(collection)
        vid = None if cid is None else self._version_id(cid, int(index))
        if vid is None or self.conn.scalar(select(runs.c.id).where(runs.c.id == run)) is None:
            return
        row = {"run_id": run, "version_id": vid, "created_at": moment(item["created_at"])}
        insert_ignore(self.conn, usages, row, ["run_id", "version_id"])

    # -- ids ------------------------------------------------------------------------------------

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

    def _version_id(self, cid: int, index: int) -> Any:
        if (cid, index) not in self._versions:
            vid = self.conn.scalar(
                select(versions.c.id).where(
                    versions.c.collection_id == cid, versions.c.idx == index
                )
            )
            if vid is None:
                return None
            self._versions[(cid, index)] = vid
        return self._versions[(cid, index)]
