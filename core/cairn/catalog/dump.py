"""The catalog's content as store-log items (catalog/journal.py), to compare with the log
or to start it: every project with its members, collection, committed or deleted version,
alias, retention policy, run and usage the connection may see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from .journal import (
    collection_item,
    policy_item,
    project_item,
    run_item,
    stamp,
    version_item,
)
from .records import version_query
from .schema import aliases, collections, projects, retention_policies, runs, usages, versions


def dump(conn: Connection) -> dict[str, dict[str, Any]]:
    """key -> item, as `State.rows()` gives them (latest included, no stamps)."""
    out: dict[str, dict[str, Any]] = {}
    names = {r.id: r.name for r in conn.execute(select(projects.c.id, projects.c.name))}
    for name in names.values():
        out[f"project:{name}"] = project_item(conn, name)
    colls: dict[int, str] = {}
    for row in conn.execute(select(collections)):
        key = f"{names[row.project_id]}/{row.name}"
        colls[row.id] = key
        out[f"collection:{key}"] = {**collection_item(row), "next_index": row.next_index}
    for row in conn.execute(version_query().where(versions.c.idx.is_not(None))):
        out[f"version:{row.project}/{row.collection}:{row.idx}"] = version_item(row)
    index = {r.id: r.idx for r in conn.execute(select(versions.c.id, versions.c.idx))}
    for row in conn.execute(select(aliases)):
        out[f"alias:{colls[row.collection_id]}:{row.name}"] = {"version": index[row.version_id]}
    for row in conn.execute(select(retention_policies)):
        where = names[row.project_id] if row.collection_id is None else colls[row.collection_id]
        out[f"policy:{where}"] = policy_item(row)
    for row in conn.execute(select(runs)):
        out[f"run:{row.id}"] = run_item(row, names[row.project_id])
    q = select(usages, versions.c.idx, versions.c.collection_id).join(
        versions, versions.c.id == usages.c.version_id
    )
    for row in conn.execute(q):
        if row.idx is not None:
            key = f"usage:{row.run_id}|{colls[row.collection_id]}:{row.idx}"
            out[key] = {"created_at": stamp(row.created_at)}
    return out
