"""The log's first snapshot: what a catalog held before its store had a log.

A repository created before the store log existed has versions no record describes. The
first writer of a cairn with the log (or `cairn verify --catalog`) dumps the catalog into
one snapshot per namespace, stamped as older than every record (`GENESIS`), so any record
that touches the same row overrides it, then writes `log/started.json`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ...catalog.dump import dump
from ...catalog.journal import stamp
from ...foundation.errors import PermissionDenied
from ...foundation.layout import SHARED, namespace_for
from ...storage import Store
from .format import NAMESPACES, STARTED_KEY, encode_snapshot, snapshot_key
from .state import GENESIS


def write_genesis(store: Store, engine: Engine) -> bool:
    """Dump the catalog into the log; False if this role may not see all of it."""
    from ...catalog.access import require_maintenance

    with engine.connect() as conn, conn.begin():
        try:
            require_maintenance(conn, "start the store log")
        except (PermissionDenied, DBAPIError):
            return False  # a role that sees every project's rows does it later
        items = dump(conn)
    at = stamp(datetime.now(timezone.utc)) or ""
    puts: dict[str, bytes] = {}
    for namespace, part in partition(items).items():
        for key in part:
            part[key]["_at"] = GENESIS
        if namespace != SHARED:
            puts[f"{NAMESPACES}{namespace}"] = b""
        puts[snapshot_key(namespace, at)] = encode_snapshot(at, part, [], genesis=True)
    # one per namespace, and few: each made durable on its own (a file and its folder)
    for key, data in puts.items():
        store.put_durable(key, data)
    doc = {"at": at, "format": 1, "genesis": bool(items)}
    store.put_durable(STARTED_KEY, json.dumps(doc, sort_keys=True).encode())
    return True


def partition(items: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Items by the store namespace of their project."""
    visibility = {
        k[len("project:") :]: v["visibility"] for k, v in items.items() if k.startswith("project:")
    }
    runs = {k[len("run:") :]: v["project"] for k, v in items.items() if k.startswith("run:")}
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for key, item in items.items():
        project = project_of(key, item, runs)
        out[namespace_for(project, visibility.get(project, "private"))][key] = dict(item)
    return out


def project_of(key: str, item: dict[str, Any], runs: dict[str, str]) -> str:
    kind, _, rest = key.partition(":")
    if kind == "project":
        return rest
    if kind == "run":
        return str(item["project"])
    if kind == "usage":
        return runs.get(rest.split("|", 1)[0], rest.split("|", 1)[1].split("/", 1)[0])
    return rest.split("/", 1)[0]
