"""`cairn://`: every file of every version as a read-only fsspec filesystem.

    pandas.read_parquet("cairn://demo/mnist:v3/part-0.parquet")
    fsspec.filesystem("cairn").ls("demo/mnist:production/images")

Paths are `project/name[:alias|:vN]/path/in/artifact` (no alias: `latest`), or
`name:alias/...` in the default project. `cairn://` lists projects, `cairn://demo` its
collections. Files are streamed from the store (EntryReader, verified per object) or
from a reference's source: nothing is downloaded whole.

The repository comes from the filesystem's options (`catalog`, `store`,
`storage_options`, `home`, `cache_dir`, `project`, or an open `repository`), else from
the CAIRN_* variables, as `Repository.open()` reads them.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import blake3
from fsspec.spec import AbstractFileSystem

from .errors import IntegrityError, NotFound
from .manifest import DIR, FILE, LINK, Entry, Manifest

if TYPE_CHECKING:
    from .repository import Repository
    from .version import ArtifactVersion

_ENV = (
    "CAIRN_HOME",
    "CAIRN_CATALOG",
    "CAIRN_STORE",
    "CAIRN_STORAGE_OPTIONS",
    "CAIRN_PROJECT",
    "CAIRN_CACHE_DIR",
)


class CairnFileSystem(AbstractFileSystem):
    protocol = ("cairn",)
    root_marker = ""

    def __init__(
        self,
        catalog: str | None = None,
        store: str | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
        home: str | None = None,
        cache_dir: str | None = None,
        project: str | None = None,
        repository: Repository | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._repository = repository
        self._from_env: tuple[tuple[str | None, ...], Repository] | None = None
        self._open_args: dict[str, Any] = {
            "catalog": catalog,
            "store": store,
            "storage_options": storage_options,
            "home": home,
            "cache_dir": cache_dir,
            "project": project,
        }
        self._trees: dict[str, _Tree] = {}  # manifest digest -> folder index
        self._lock = threading.Lock()

    @property
    def repository(self) -> Repository:
        """The repository read from; one named by CAIRN_* variables follows their changes
        (fsspec keeps one filesystem instance per set of options for the whole process)."""
        with self._lock:
            env = tuple(os.environ.get(v) for v in _ENV)
            if self._from_env is not None and self._from_env[0] != env:
                self._from_env[1].close()
                self._repository = self._from_env = None
            if self._repository is None:
                from .repository import Repository

                self._repository = Repository.open(**self._open_args)
                self._from_env = (env, self._repository)
            return self._repository

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("cairn://"):
            path = path[len("cairn://") :]
        elif path.startswith("cairn::"):
            path = path[len("cairn::") :]
        return path.strip("/")

    # -- reading ---------------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        ref, inner = _split(path)
        if ref is None:
            out = self._ls_catalog(path)
        else:
            version, tree = self._version(ref)
            here = self._at(ref, version, tree, inner)
            if here["type"] == "directory":
                real = tree.real(inner) or ""
                out = [
                    self._at(ref, version, tree, _join(inner, child.rsplit("/", 1)[-1]))
                    for child in sorted(tree.folders[real])
                ]
            else:
                out = [here]
        return out if detail else [o["name"] for o in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        ref, inner = _split(path)
        if ref is None:
            if path and path not in self.repository.projects():
                raise FileNotFoundError(f"cairn://{path}: no such project")
            return _folder(path)
        version, tree = self._version(ref)
        return self._at(ref, version, tree, inner)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        if mode != "rb":
            raise PermissionError(
                "cairn:// is read-only: log a new version (Artifact, `cairn put`) to change files"
            )
        version, entry = self._entry(path)
        return self.repository._open_entry(entry, version.namespace)

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        version, entry = self._entry(path)
        start = 0 if start is None else (start if start >= 0 else max(0, entry.size + start))
        end = entry.size if end is None else (end if end >= 0 else max(0, entry.size + end))
        if end <= start:
            return b""
        with self.repository._open_entry(entry, version.namespace) as f:
            f.seek(start)
            data: bytes = f.read(end - start)
        return data

    def checksum(self, path: str) -> int:
        return int(blake3.blake3(self.ukey(path).encode()).hexdigest()[:16], 16)

    def ukey(self, path: str) -> str:
        entry = self._entry(path)[1]
        return entry.digest or f"{entry.ref}#{sorted(entry.pin.items())}"

    # -- read-only -------------------------------------------------------------------------

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(
            "cairn:// is read-only: log a new version (Artifact, `cairn put`) to change files"
        )

    rm_file = _rm = rm = mkdir = makedirs = rmdir = cp_file = mv = touch = pipe_file = _read_only

    # -- internals -------------------------------------------------------------------------

    def _ls_catalog(self, path: str) -> list[dict[str, Any]]:
        repo = self.repository
        if not path:
            return [_folder(p) for p in repo.projects()]
        if path not in repo.projects():
            raise FileNotFoundError(f"cairn://{path}: no such project")
        return [_folder(f"{path}/{c['name']}") for c in repo.collections(path)]

    def _version(self, ref: str) -> tuple[ArtifactVersion, _Tree]:
        try:
            version = self.repository.artifact(ref)
        except NotFound as exc:
            raise FileNotFoundError(f"cairn://{ref}: {exc}") from None
        digest = version.digest or ""
        with self._lock:
            tree = self._trees.get(digest)
        if tree is None:  # manifests never change: index each one once
            tree = _Tree(version.manifest)
            with self._lock:
                self._trees[digest] = tree
        return version, tree

    def _entry(self, path: str) -> tuple[ArtifactVersion, Entry]:
        """The file a path names, links followed within its version."""
        path = self._strip_protocol(path)
        ref, inner = _split(path)
        if ref is None or not inner:
            raise IsADirectoryError(f"cairn://{path} is not a file")
        version, tree = self._version(ref)
        real = tree.real(inner)
        if real is not None and real in tree.folders:
            raise IsADirectoryError(f"cairn://{path} is a folder")
        if real is None or real not in tree.files:
            raise FileNotFoundError(f"cairn://{path}: {version.ref} has no such file")
        return version, tree.files[real]

    def _at(self, ref: str, version: ArtifactVersion, tree: _Tree, inner: str) -> dict[str, Any]:
        """The info of `inner` in a version: a file, a folder, or a link (reported with
        `islink` and `destination`, typed as what it points to, "other" if nothing)."""
        name = _join(ref, inner)
        raw = tree.manifest.get(inner)
        real = tree.real(inner)
        if real is not None and real in tree.files:
            info = self._file_info(name, tree.files[real], version)
        elif real is not None and real in tree.folders:
            info = _folder(name)
        elif raw is not None and raw.kind == LINK:
            info = {"name": name, "type": "other", "size": 0}
        else:
            raise FileNotFoundError(f"cairn://{name}: {version.ref} has no such file")
        if raw is not None and raw.kind == LINK:
            info.update(islink=True, destination=raw.target)
        return info

    def _file_info(self, name: str, entry: Entry, version: ArtifactVersion) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": name,
            "type": "file",
            "size": entry.size,
            "digest": entry.digest,
            "version": version.ref,
            "created": version.created_at.timestamp(),
        }
        if entry.is_reference:
            info["ref"] = entry.ref
        return info


class _Tree:
    """A manifest with its files and folders: folder path ('' for the root) -> paths of
    what is in it (empty-folder entries included)."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self.files = {p: e for p, e in manifest.items() if e.kind == FILE}
        self.folders: dict[str, set[str]] = {"": set()}
        for path, e in manifest.items():
            if e.kind == DIR:
                self.folders.setdefault(path, set())
            child = path
            while "/" in child:
                parent = child.rsplit("/", 1)[0]
                self.folders.setdefault(parent, set()).add(child)
                child = parent
            self.folders[""].add(child)

    def real(self, inner: str) -> str | None:
        """`inner` with links followed within the version; None for a link loop."""
        try:
            return self.manifest.resolve(inner)
        except IntegrityError:
            return None


def _join(head: str, name: str) -> str:
    return f"{head}/{name}" if head and name else head or name


def _split(path: str) -> tuple[str | None, str]:
    """(version ref, path inside it) of a cairn:// path; (None, path) above versions.

    'demo/mnist:v3/a/b' -> ('demo/mnist:v3', 'a/b'); 'mnist:v3/a' -> ('mnist:v3', 'a');
    'demo' -> (None, 'demo'): a project.
    """
    parts = path.split("/") if path else []
    if not parts:
        return None, ""
    if ":" in parts[0]:
        return parts[0], "/".join(parts[1:])
    if len(parts) == 1:
        return None, parts[0]
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:])


def _folder(name: str) -> dict[str, Any]:
    return {"name": name, "type": "directory", "size": 0}
