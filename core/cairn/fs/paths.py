"""What a cairn:// path names: a project, a collection, a version, a path inside one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..foundation.errors import InvalidName
from ..foundation.names import LATEST, Ref, check_path

PROTOCOLS = ("cairn://", "cairn::")


def strip(path: Any) -> str:
    """`path` without the protocol and the slashes around it."""
    path = str(path)
    for prefix in PROTOCOLS:
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return path.strip("/")


def split(path: str) -> tuple[str | None, str]:
    """(version ref, path inside it) of a stripped cairn:// path; (None, path) above versions.

    'demo/mnist:v3/a/b' -> ('demo/mnist:v3', 'a/b'); 'mnist:v3/a' -> ('mnist:v3', 'a');
    'demo/mnist/a' -> ('demo/mnist', 'a'); 'demo' -> (None, 'demo'): a project.
    """
    parts = path.split("/") if path else []
    if not parts:
        return None, ""
    if ":" in parts[0]:
        return parts[0], "/".join(parts[1:])
    if len(parts) == 1:
        return None, parts[0]
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:])


def join(head: str, name: str) -> str:
    return f"{head}/{name}" if head and name else head or name


def folder(name: str) -> dict[str, Any]:
    """The info of a folder (projects, collections and folders inside versions)."""
    return {"name": name, "type": "directory", "size": 0}


@dataclass(frozen=True)
class Target:
    """Where a write goes: a path inside the next version of `project/name`."""

    project: str
    name: str
    inner: str  # '' for the collection's root

    @property
    def collection(self) -> str:
        return f"{self.project}/{self.name}"

    @classmethod
    def of(cls, path: str, *, default_project: str) -> Target:
        """The target of a write to `path` (stripped); PermissionError for a pinned
        version or alias, since versions are immutable."""
        ref, inner = split(path)
        if ref is None:
            raise PermissionError(
                f"cairn://{path}: write inside a collection (cairn://project/name/path); "
                "projects and collections are made by the first file written to them"
            )
        try:
            parsed = Ref.parse(ref, default_project=default_project)
        except InvalidName as exc:
            raise FileNotFoundError(f"cairn://{path}: {exc}") from None
        if parsed.selector != LATEST or parsed.distributed_id is not None:
            raise PermissionError(
                f"cairn://{path}: {parsed} is a pinned version and versions are immutable; "
                f"write to cairn://{parsed.project}/{parsed.name}/{inner or '...'} to log "
                "a new version derived from the latest"
            )
        if inner:
            try:
                inner = check_path(inner)
            except InvalidName as exc:
                raise FileNotFoundError(f"cairn://{path}: {exc}") from None
        return cls(parsed.project, parsed.name, inner)
