"""Where each kind of thing lives in a store (docs/FORMAT.md has the full layout).

A store is split into namespaces, one per access boundary (docs/ACCESS.md): the shared
namespace `SHARED` ('') of every public and open project at the root, and one per
private project under `projects/<name>/`. A namespace is named by '' or by its project.
"""

from __future__ import annotations

from functools import lru_cache

from .errors import InvalidName
from .names import check_name

CONFIG_KEY = "config.json"
OBJECTS = "objects/"
MANIFESTS = "manifests/"
PACKS = "packs/"
PROJECTS = "projects/"
#: gc's records of what it deleted, one immutable object per run (docs/FORMAT.md)
GC = "gc/"
SHARED = ""
_HEX = frozenset("0123456789abcdef")


def namespace_for(project: str, visibility: str) -> str:
    """The namespace a project's new versions are stored in: shared unless private."""
    return SHARED if visibility in ("public", "open") else project


@lru_cache(maxsize=1024)
def namespace_prefix(namespace: str) -> str:
    """'' for the shared namespace, `projects/<name>/` for a private project's.

    The name is checked like a project name (no '/', no '..'): a namespace read from a
    catalog must not lead a key out of the store prefix (DESIGN invariant 10).
    """
    return f"{PROJECTS}{check_name(namespace, kind='namespace')}/" if namespace else ""


def object_key(digest: str, *, namespace: str) -> str:
    return f"{namespace_prefix(namespace)}{OBJECTS}{digest[:2]}/{digest[2:]}"


def manifest_key(digest: str, *, namespace: str) -> str:
    return f"{namespace_prefix(namespace)}{MANIFESTS}{digest}.json"


def pack_key(digest: str, *, namespace: str) -> str:
    """A pack of small objects (docs/FORMAT.md), named by the digest of its bytes."""
    return f"{namespace_prefix(namespace)}{PACKS}{digest[:2]}/{digest[2:]}"


def gc_record_key(stamp: str, token: str) -> str:
    """A gc run's record: named by its start time (sorts by time) and a random token."""
    return f"{GC}{stamp}-{token}.json.gz"


def digest_of_object_key(key: str) -> tuple[str, str] | None:
    """(namespace, digest) of an object key of any namespace, or None for anything else."""
    return _digest_in(key, OBJECTS)


def digest_of_pack_key(key: str) -> tuple[str, str] | None:
    """(namespace, digest) of a pack key of any namespace, or None for anything else."""
    return _digest_in(key, PACKS)


def _digest_in(key: str, folder: str) -> tuple[str, str] | None:
    namespace, rest = _split_namespace(key)
    if namespace is None or not rest.startswith(folder):
        return None
    head, _, tail = rest[len(folder) :].partition("/")
    digest = head + tail
    return (namespace, digest) if len(head) == 2 and _is_digest(digest) else None


def digest_of_manifest_key(key: str) -> tuple[str, str] | None:
    """(namespace, digest) of a manifest key of any namespace, or None for anything else."""
    namespace, rest = _split_namespace(key)
    if namespace is None or not (rest.startswith(MANIFESTS) and rest.endswith(".json")):
        return None
    digest = rest[len(MANIFESTS) : -len(".json")]
    return (namespace, digest) if _is_digest(digest) else None


def _split_namespace(key: str) -> tuple[str | None, str]:
    """(namespace, key inside it); namespace None for a `projects/` key naming none."""
    if not key.startswith(PROJECTS):
        return SHARED, key
    name, slash, rest = key[len(PROJECTS) :].partition("/")
    try:
        namespace_prefix(name)
    except InvalidName:
        return None, key
    return (name, rest) if slash and name else (None, key)


def _is_digest(value: str) -> bool:
    return len(value) == 64 and set(value) <= _HEX
