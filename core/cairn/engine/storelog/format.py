"""The store log's objects: where they live and how they are written (docs/FORMAT.md
"Store log").

Every object is written once under a name no other writer can choose (a stamp and random
bits), so concurrent writers never collide and a partial write is never visible.
"""

from __future__ import annotations

import gzip
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ...foundation.errors import CairnError
from ...foundation.layout import namespace_prefix

LOG_FORMAT = 1
LOG = "log/"
RECORDS = "records/"
SNAPSHOTS = "snapshots/"
#: written (at the store root) once the catalog's content from before the log is in it
STARTED_KEY = "log/started.json"
#: `log/namespaces/<name>`: a private namespace that has a log (listed by recover)
NAMESPACES = "log/namespaces/"


def log_prefix(namespace: str) -> str:
    return f"{namespace_prefix(namespace)}{LOG}"


def name_for(stamp: str) -> str:
    """`<stamp>-<random>`: sorts by time, unique across writers."""
    compact = stamp.replace("-", "").replace(":", "").replace("+0000", "Z")
    return f"{compact}-{secrets.token_hex(8)}"


def record_key(namespace: str, stamp: str) -> str:
    return f"{log_prefix(namespace)}{RECORDS}{name_for(stamp)}.json"


def snapshot_key(namespace: str, stamp: str) -> str:
    return f"{log_prefix(namespace)}{SNAPSHOTS}{name_for(stamp)}.json.gz"


@dataclass(frozen=True)
class Record:
    """One write transaction's changes in one namespace."""

    key: str
    at: str
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class Snapshot:
    """Items folded from earlier snapshots and the records named in `records`."""

    key: str
    at: str
    items: dict[str, dict[str, Any]]
    records: frozenset[str]


def encode_record(at: str, entries: list[dict[str, Any]]) -> bytes:
    doc = {"at": at, "entries": entries, "format": LOG_FORMAT}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode_record(key: str, data: bytes) -> Record:
    doc = _load(key, data)
    return Record(key, doc["at"], doc["entries"])


def encode_snapshot(at: str, items: dict[str, Any], records: list[str], *, genesis: bool) -> bytes:
    doc = {"at": at, "format": LOG_FORMAT, "genesis": genesis, "items": items, "records": records}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(raw, compresslevel=6, mtime=0)


def decode_snapshot(key: str, data: bytes) -> Snapshot:
    doc = _load(key, gzip.decompress(data))
    return Snapshot(key, doc["at"], doc["items"], frozenset(doc["records"]))


def _load(key: str, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CairnError(f"store log object {key} is not JSON: {exc}") from exc
    if doc.get("format") != LOG_FORMAT:
        raise CairnError(
            f"store log object {key} has format {doc.get('format')!r}; this cairn reads "
            f"{LOG_FORMAT}: upgrade cairn"
        )
    return dict(doc)
