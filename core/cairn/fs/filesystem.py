"""`CairnFileSystem`: the fsspec filesystem registered as `cairn://` (docs/FS.md).

The repository comes from the filesystem's options (`catalog`, `store`,
`storage_options`, `home`, `cache_dir`, `project`, or an open `repository`), else from
the CAIRN_* variables, as `Repository.open()` reads them. Writes record lineage to
`run` (a `Run`) or `run_id` when given, else to the current run (`with repo.run(...)`,
an orchestrator's `current_run()`: `cairn.current.run_in_effect`).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import blake3
from fsspec.spec import AbstractFileSystem

from ..engine.blocks import BlockIndexes
from ..engine.objects import MEMBER_MAX
from ..foundation.errors import CairnError, PermissionDenied
from ..foundation.manifest import DIR, LINK, Entry
from ..foundation.names import LATEST, Ref
from . import paths
from .folders import Folders
from .known import Known
from .reading import CairnReadFile, EntryRanges, ObjectCache, StreamRanges
from .writing import Batch, CairnTransaction, CairnWriteFile, VersionWriter

if TYPE_CHECKING:
    from ..catalog.packs import Member
    from ..repository import Repository
    from ..run import Run
    from ..version import ArtifactVersion

_ENV = (
    "CAIRN_HOME",
    "CAIRN_CATALOG",
    "CAIRN_STORE",
    "CAIRN_STORAGE_OPTIONS",
    "CAIRN_PROJECT",
    "CAIRN_CACHE_DIR",
)


class CairnFileSystem(VersionWriter, AbstractFileSystem):
    """Versions as files: reading here, writing in `VersionWriter` (docs/FS.md)."""

    protocol = ("cairn",)
    root_marker = ""
    transaction_type = CairnTransaction

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
        run: Run | None = None,
        run_id: str | None = None,
        type: str = "dataset",
        object_cache_bytes: int = 512 << 20,
        ref_ttl: float = 1.0,
        **kwargs: Any,
    ):
        self._local = threading.local()  # this thread's batch and what it committed
        self._explicit: Batch | None = None  # the open `with fs.transaction:`'s batch
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
        self._run, self._run_id, self._type = run, run_id, type
        self._ref_ttl = ref_ttl
        self._refs: dict[str, tuple[float, ArtifactVersion]] = {}  # ref -> (when, version)
        self._asking: dict[str, threading.Lock] = {}  # ref -> held while asking the catalog
        self._folders: dict[str, Folders] = {}  # manifest digest -> folder index
        self._where: dict[tuple[str, str], dict[str, Member]] = {}  # packed objects
        self._known = Known()  # infos and range readers of versions' files
        self.objects_cache = ObjectCache(object_cache_bytes)
        self._block_indexes: BlockIndexes | None = None
        self._lock = threading.Lock()

    @property
    def repository(self) -> Repository:
        """The repository read from; one named by CAIRN_* variables follows their changes
        (fsspec keeps one filesystem instance per set of options for the whole process)."""
        given = self._repository
        if given is not None and self._from_env is None:  # `repository=`: nothing to follow
            return given
        with self._lock:
            env = tuple(os.environ.get(v) for v in _ENV)
            if self._from_env is not None and self._from_env[0] != env:
                self._from_env[1].close()
                self._repository = self._from_env = None
                self._refs.clear()  # refs name another repository's versions now
                self._folders.clear()
                self._where.clear()
                self._known.clear()
            if self._repository is None:
                from ..repository import Repository

                self._repository = Repository.open(**self._open_args)
                self._from_env = (env, self._repository)
            return self._repository

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return paths.strip(path)

    # -- reading ---------------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        ref, inner = paths.split(path)
        if ref is None:
            out = self._ls_catalog(path)
        else:
            version, tree = self._version(ref)
            here = self._at(ref, version, tree, inner)
            if here["type"] == "directory":
                real = tree.real(inner) or ""
                out = [
                    self._at(ref, version, tree, paths.join(inner, child.rsplit("/", 1)[-1]))
                    for child in sorted(tree.folders[real])
                ]
            else:
                out = [here]
        return out if detail else [o["name"] for o in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        ref, inner = paths.split(path)
        if ref is None:
            if path and path not in self._call(self.repository.projects):
                raise FileNotFoundError(f"cairn://{path}: no such project")
            return paths.folder(path)
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
        path = self._strip_protocol(path)
        if mode in ("wb", "xb"):
            target = self._target(path)
            if mode == "xb" and self._exists_for_write(target, path):
                raise FileExistsError(f"cairn://{path} exists")
            return CairnWriteFile(self, path, target, block_size=block_size or 8 << 20)
        if mode != "rb":
            raise ValueError(
                f"cairn://{path}: mode {mode!r} is not supported (rb, wb, xb: a version's "
                "files are immutable, so appending means writing the whole file again)"
            )
        version, entry = self._entry(path)
        return CairnReadFile(
            self,
            path,
            self._ranges(version, entry),
            entry.size,
            block_size=block_size or 4 << 20,
            cache_options=cache_options,
        )

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        version, entry = self._entry(path)
        size = entry.size
        start = 0 if start is None else (start if start >= 0 else max(0, size + start))
        end = size if end is None else (end if end >= 0 else max(0, size + end))
        ranges = self._ranges(version, entry)
        try:
            data: bytes = ranges.read(start, end)
        finally:
            if isinstance(ranges, StreamRanges):
                ranges.close()
        return data

    def cat_ranges(
        self,
        paths: list[str],
        starts: list[int] | int,
        ends: list[int] | int,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        n = len(paths)
        starts = starts if isinstance(starts, list) else [starts] * n
        ends = ends if isinstance(ends, list) else [ends] * n
        out: list[Any] = []
        for p, s, e in zip(paths, starts, ends, strict=True):
            try:
                out.append(self.cat_file(p, s, e))
            except Exception as exc:
                if on_error != "return":
                    raise
                out.append(exc)
        return out

    def checksum(self, path: str) -> int:
        """An int from the content's digest (`ukey`), as fsspec's `checksum` is; the
        same as `info(path)["checksum"]`."""
        return _checksum(self.ukey(path))

    def ukey(self, path: str) -> str:
        """The content's BLAKE3 digest (a reference: its source and pin)."""
        return _ukey(self._entry(path)[1])

    def created(self, path: str) -> datetime:
        """When the version holding `path` was created (files have no other time)."""
        return self._version(self._ref_of(path))[0].created_at

    def modified(self, path: str) -> datetime:
        """A version's files never change after it is committed: its creation time."""
        return self.created(path)

    # -- internals -------------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(...)`, with cairn's access errors as the OSErrors engines expect."""
        try:
            return fn(*args, **kwargs)
        except PermissionDenied as exc:
            raise PermissionError(str(exc)) from exc

    def _ls_catalog(self, path: str) -> list[dict[str, Any]]:
        repo = self.repository
        if not path:
            return [paths.folder(p) for p in self._call(repo.projects)]
        if path not in self._call(repo.projects):
            raise FileNotFoundError(f"cairn://{path}: no such project")
        return [paths.folder(f"{path}/{c['name']}") for c in self._call(repo.collections, path)]

    def _ref_of(self, path: str) -> str:
        ref, _ = paths.split(self._strip_protocol(path))
        if ref is None:
            raise FileNotFoundError(f"cairn://{path} is not inside a version")
        return ref

    def _version(self, ref: str) -> tuple[ArtifactVersion, Folders]:
        batch = self._current()
        try:
            if batch is not None and batch.explicit:
                version = self._seen(batch, ref)
            else:
                version = self._resolve(ref)
        except CairnError as exc:  # NotFound, InvalidName
            raise FileNotFoundError(f"cairn://{ref}: {exc}") from None
        digest = version.digest or ""
        with self._lock:
            tree = self._folders.get(digest)
        if tree is None:  # manifests never change: index each one once
            tree = Folders(version.manifest)
            with self._lock:
                self._folders[digest] = tree
        return version, tree

    def _resolve(self, ref: str) -> ArtifactVersion:
        """The version `ref` names, asked of the catalog at most every `ref_ttl` seconds:
        an engine opening files, asking their size and times, makes many calls per
        query, and each would otherwise cost catalog queries. Threads that find it
        expired at once ask once: the others wait for that answer."""
        repository = self.repository  # first: CAIRN_* may name another repository by now
        known = self._refs.get(ref)  # one dict read: safe without the lock
        if known is not None and time.monotonic() - known[0] < self._ref_ttl:
            return known[1]
        with self._lock:
            asking = self._asking.setdefault(ref, threading.Lock())
        with asking:
            now = time.monotonic()
            known = self._refs.get(ref)
            if known is not None and now - known[0] < self._ref_ttl:  # another thread asked
                return known[1]
            version: ArtifactVersion = self._call(repository.artifact, ref)
            with self._lock:
                self._refs[ref] = (now, version)
            return version

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget resolved refs (aliases are asked of the catalog again) and listings."""
        with self._lock:
            self._refs.clear()
        super().invalidate_cache(path)

    def _seen(self, batch: Batch, ref: str) -> ArtifactVersion:
        """Inside a transaction, a collection's latest as first seen there."""
        parsed = Ref.parse(ref, default_project=self.repository.default_project)
        if parsed.selector != LATEST or parsed.distributed_id is not None:
            version: ArtifactVersion = self._call(self.repository.artifact, ref)
            return version
        key = f"{parsed.project}/{parsed.name}"
        if key not in batch.seen:
            batch.seen[key] = self._call(self.repository.artifact, ref)
        return batch.seen[key]

    def _entry(self, path: str) -> tuple[ArtifactVersion, Entry]:
        """The file a path names, links followed within its version."""
        path = self._strip_protocol(path)
        ref, inner = paths.split(path)
        if ref is None or not inner:
            self.info(path)  # FileNotFoundError naming an unknown project or collection
            raise IsADirectoryError(f"cairn://{path} is not a file")
        version, tree = self._version(ref)
        real = tree.real(inner)
        if real is not None and real in tree.folders:
            raise IsADirectoryError(f"cairn://{path} is a folder")
        if real is None or real not in tree.files:
            raise FileNotFoundError(f"cairn://{path}: {version.ref} has no such file")
        return version, tree.files[real]

    def _ranges(self, version: ArtifactVersion, entry: Entry) -> Any:
        """What reads byte ranges of `entry`: its store objects (one reader per version's
        file, kept: `known`), or its source (a stream per open)."""
        if entry.is_reference:
            return StreamRanges(self.repository.contents.open(entry, version.namespace), entry.size)
        return self._known.reader((version.id, entry.path), lambda: self._stored(version, entry))

    def _stored(self, version: ArtifactVersion, entry: Entry) -> EntryRanges:
        """The range reader of a stored entry."""
        key = (version.namespace, entry.digest or "")
        with self._lock:
            where = self._where.get(key)
        if where is None:  # packed objects move only by gc, which reading copes with
            # only small objects are packed: larger ones are read loose without asking
            # the catalog (one that is packed after all is located when found missing)
            small = [c.digest for c in entry.chunks if c.size <= MEMBER_MAX]
            if not entry.chunks and entry.size <= MEMBER_MAX and entry.digest:
                small = [entry.digest]
            where = self.repository.objects.locate(version.namespace, small) if small else {}
            with self._lock:
                self._where[key] = where
        return EntryRanges(
            self.repository.objects,
            entry,
            namespace=version.namespace,
            cache=self.objects_cache,
            where=where,
            indexes=self._indexes(),
        )

    def _indexes(self) -> BlockIndexes:
        """The block indexes kept in the repository's cache folder (`blocks`)."""
        folder = os.path.join(self.repository.contents.cache_dir, "blocks")
        with self._lock:
            if self._block_indexes is None or self._block_indexes.folder != folder:
                self._block_indexes = BlockIndexes(folder)
            return self._block_indexes

    def _at(self, ref: str, version: ArtifactVersion, tree: Folders, inner: str) -> dict[str, Any]:
        """The info of `inner` in a version, worked out once per version (`known`)."""
        return self._known.info(
            (ref, version.id, inner), lambda: self._describe(ref, version, tree, inner)
        )

    def _describe(
        self, ref: str, version: ArtifactVersion, tree: Folders, inner: str
    ) -> dict[str, Any]:
        """The info of `inner` in a version: a file, a folder, or a link (reported with
        `islink` and `destination`, typed as what it points to, "other" if nothing)."""
        name = paths.join(ref, inner)
        raw = tree.manifest.get(inner)
        real = tree.real(inner)
        if real is not None and real in tree.files:
            info = self._file_info(name, tree.files[real], version)
        elif real is not None and real in tree.folders:
            info = paths.folder(name)
        elif raw is not None and raw.kind == LINK:
            info = {"name": name, "type": "other", "size": 0}
        else:
            raise FileNotFoundError(f"cairn://{name}: {version.ref} has no such file")
        if raw is not None and raw.kind == LINK:
            info.update(islink=True, destination=raw.target)
        elif raw is not None and raw.kind == DIR:
            info["empty"] = True
        return info

    def _file_info(self, name: str, entry: Entry, version: ArtifactVersion) -> dict[str, Any]:
        created = version.created_at.timestamp()
        ukey = _ukey(entry)
        info: dict[str, Any] = {
            "name": name,
            "type": "file",
            "size": entry.size,
            "digest": entry.digest,
            "ukey": ukey,
            "checksum": _checksum(ukey),
            "version": version.ref,
            "created": created,
            "mtime": created,
            "modified": version.created_at,  # what `modified()` returns
        }
        if entry.is_reference:
            info["ref"] = entry.ref
        return info


def _ukey(entry: Entry) -> str:
    """What identifies a file's content: its digest, or a reference's source and pin."""
    return entry.digest or f"{entry.ref}#{sorted(entry.pin.items())}"


def _checksum(ukey: str) -> int:
    """fsspec's `checksum` is an int: the first 64 bits of the BLAKE3 hash of `ukey`."""
    return int(blake3.blake3(ukey.encode()).hexdigest()[:16], 16)
