"""Where each kind of thing lives in a store (docs/FORMAT.md has the full layout)."""

from __future__ import annotations

CONFIG_KEY = "config.json"
OBJECTS = "objects/"
MANIFESTS = "manifests/"


def object_key(digest: str) -> str:
    return f"{OBJECTS}{digest[:2]}/{digest[2:]}"


def manifest_key(digest: str) -> str:
    return f"{MANIFESTS}{digest}.json"


def digest_of_object_key(key: str) -> str | None:
    """The digest an `objects/` key stands for, or None for anything else."""
    if not key.startswith(OBJECTS):
        return None
    rest = key[len(OBJECTS) :]
    head, _, tail = rest.partition("/")
    return head + tail if len(head) == 2 and len(head + tail) == 64 else None
