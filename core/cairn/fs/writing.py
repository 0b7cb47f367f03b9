"""Writing through `cairn://`: files opened for writing, and the batches (implicit per
call, or `with fs.transaction:`) whose changes become one version per collection."""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.transaction import Transaction

from ..current import run_in_effect
from ..foundation.errors import CairnError, NotFound
from ..foundation.manifest import Manifest
from . import paths
from .changes import Changes, drop, local_file
from .commit import commit, latest
from .paths import Target

if TYPE_CHECKING:
    from ..foundation.manifest import Entry
    from ..repository import Repository
    from ..run import Run
    from ..version import ArtifactVersion
    from .filesystem import CairnFileSystem
    from .folders import Folders

_EMPTY = Manifest()


@dataclass
class Batch:
    """Changes by collection, committed together when the batch ends: one version per
    collection touched. `explicit`: opened by `with fs.transaction:`, not by one call."""

    explicit: bool
    changes: dict[str, Changes] = field(default_factory=dict)
    #: the latest version of each collection as first read or written in the batch:
    #: later reads see the same one, and writes are based on it (a read-modify-write
    #: then conflicts if another writer changed the same path meanwhile)
    seen: dict[str, ArtifactVersion] = field(default_factory=dict)

    def discard(self) -> None:
        for c in self.changes.values():
            c.discard()
        self.changes.clear()


class CairnWriteFile(AbstractBufferedFile):
    """A file of the next version being written: bytes go to a local temporary file,
    which becomes the path's content when the file is closed (committed then, or when
    the transaction ends). A file left by an error (closed by `with` on an exception,
    or dropped unclosed) is discarded, never committed half written."""

    def __init__(self, fs: CairnFileSystem, path: str, target: Target, **kwargs: Any):
        self._target = target
        self._local = local_file()
        self._out = open(self._local, "wb")  # noqa: SIM115 - closed by _upload_chunk/discard
        kwargs.pop("mode", None)
        super().__init__(fs, path, mode="wb", **kwargs)

    def _initiate_upload(self) -> None:
        pass

    def _upload_chunk(self, final: bool = False) -> bool:
        self._out.write(self.buffer.getbuffer())
        if final:
            self._out.close()
            self.fs._written(self._target, self._local)
        return True

    def commit(self) -> None:
        """Nothing to do: the batch the file joined commits it."""

    def discard(self) -> None:
        """Forget what was written (the path keeps its committed content)."""
        if not self.closed:
            self.closed: bool = True
            self._out.close()
            drop(self._local)

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.discard()


class CairnTransaction(Transaction):
    """`with fs.transaction:`: every write made through the filesystem while the block
    runs (from any thread) becomes one version per collection, committed when the block
    exits, discarded if it raises."""

    fs: CairnFileSystem | None

    def start(self) -> None:
        self.files: deque[Any] = deque()
        assert self.fs is not None
        self.fs._start_batch(explicit=True)

    def complete(self, commit: bool = True) -> None:
        fs, self.fs = self.fs, None
        assert fs is not None
        self.files.clear()
        fs._end_batch(commit=commit)


class VersionWriter:
    """The write side of `CairnFileSystem`: every write verb, and the batches that turn
    them into versions (one per call, or one per `with fs.transaction:`)."""

    if TYPE_CHECKING:  # provided by CairnFileSystem and fsspec's AbstractFileSystem
        _local: threading.local
        _explicit: Batch | None
        _lock: threading.Lock
        _run: Run | None
        _run_id: str | None
        _type: str
        _intrans: bool
        _transaction: Any

        @property
        def repository(self) -> Repository: ...
        def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...
        def _version(self, ref: str) -> tuple[ArtifactVersion, Folders]: ...
        def _entry(self, path: str) -> tuple[ArtifactVersion, Entry]: ...
        def _strip_protocol(self, path: Any) -> Any: ...
        def info(self, path: str, **kwargs: Any) -> dict[str, Any]: ...
        def isdir(self, path: str) -> bool: ...
        def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any: ...
        def invalidate_cache(self, path: str | None = None) -> None: ...

    # -- writing: each call below is one version, unless inside `with fs.transaction:` ------

    def pipe(self, path: Any, value: Any = None, **kwargs: Any) -> None:
        with self._batch():
            AbstractFileSystem.pipe(self, path, value, **kwargs)

    def put(self, lpath: Any, rpath: Any, recursive: bool = False, **kwargs: Any) -> None:
        with self._batch():
            AbstractFileSystem.put(self, lpath, rpath, recursive=recursive, **kwargs)

    def copy(self, path1: Any, path2: Any, recursive: bool = False, **kwargs: Any) -> None:
        with self._batch():
            AbstractFileSystem.copy(self, path1, path2, recursive=recursive, **kwargs)

    def mv(self, path1: Any, path2: Any, recursive: bool = False, **kwargs: Any) -> None:
        with self._batch():
            AbstractFileSystem.mv(self, path1, path2, recursive=recursive, **kwargs)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        with self._batch():
            AbstractFileSystem.rm(self, path, recursive=recursive, maxdepth=maxdepth)

    def rm_file(self, path: str) -> None:
        path = self._strip_protocol(path)
        # a collection is never removed through cairn://: its versions are its history
        hint = f"its versions stay; remove what is in it (cairn://{path}/*) for an empty version"
        target = self._target(path, hint=hint)
        if not self._exists_for_write(target, path):
            raise FileNotFoundError(f"cairn://{path}: no such file or folder")
        with self._batch() as batch:
            changes = self._changes(batch, target)
            for p in [*self._below(target), target.inner]:
                changes.remove(p)

    _rm = rm_file

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        target = self._target(path2)
        if self.isdir(path1):
            self.makedirs(path2, exist_ok=True)
            return
        version, entry = self._entry(path1)
        with self._batch() as batch:
            changes = self._changes(batch, target)
            if entry.is_reference or version.project == target.project:
                # same project, same store namespace: the stored content is reused
                changes.put_entry(entry.moved(target.inner))
            else:
                local = local_file()
                with open(local, "wb") as out, self.open(path1, "rb") as src:
                    while block := src.read(8 << 20):
                        out.write(block)
                changes.put_file(target.inner, local)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.makedirs(path, exist_ok=True)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """An empty folder inside a version (projects and collections need no making:
        the first file written to them makes them)."""
        path = self._strip_protocol(path)
        ref, inner = paths.split(path)
        if ref is None or not inner:
            return
        target = self._target(path)
        if self._exists_for_write(target, path):
            if not exist_ok:
                raise FileExistsError(f"cairn://{path} exists")
            return
        with self._batch() as batch:
            self._changes(batch, target).add_folder(target.inner)

    @property
    def committed(self) -> list[ArtifactVersion]:
        """The versions the last write (or transaction) of this thread committed."""
        return list(getattr(self._local, "committed", []))

    # -- batches: one per call in its thread, or the open transaction's for every thread --

    def _current(self) -> Batch | None:
        """The batch a write joins: the open transaction's (whichever thread writes: Dask
        and pyarrow write parts from worker threads), else this thread's call's."""
        return self._explicit or getattr(self._local, "batch", None)

    def _start_batch(self, *, explicit: bool) -> Batch:
        batch = Batch(explicit=explicit)
        if explicit:
            if self._explicit is not None:
                raise CairnError("a cairn:// transaction is already open on this filesystem")
            self._explicit = batch
            self._intrans = True
        else:
            self._local.batch = batch
        return batch

    def _end_batch(self, *, commit: bool, explicit: bool = True) -> None:
        if explicit:
            batch, self._explicit = self._explicit, None
            self._intrans = False
            self._transaction = None
        else:
            batch, self._local.batch = self._local.batch, None
        assert batch is not None
        if commit:
            self._commit(batch)
        else:
            batch.discard()

    @contextlib.contextmanager
    def _batch(self) -> Iterator[Batch]:
        """The batch writes join: this thread's open one, else one for this call."""
        batch = self._current()
        if batch is not None:
            yield batch
            return
        batch = self._start_batch(explicit=False)
        try:
            yield batch
        except BaseException:
            self._end_batch(commit=False, explicit=False)
            raise
        self._end_batch(commit=True, explicit=False)

    def _commit(self, batch: Batch) -> None:
        """One version per collection touched; the first failure is raised after every
        other collection was tried (versions of different collections commit apart)."""
        done: list[ArtifactVersion] = []
        failed: BaseException | None = None
        run = self._producer()
        try:
            for changes in batch.changes.values():
                try:
                    v = self._call(commit, self.repository, changes, type=self._type, run=run)
                except BaseException as exc:
                    failed = failed or exc
                    continue
                if v is not None:
                    done.append(v)
        finally:
            batch.discard()
            self._local.committed = done
            self.invalidate_cache()
        if failed is not None:
            raise failed

    def _producer(self) -> Run | None:
        """The run the versions committed now are logged by: `run=`, else `run_id=`,
        else the run in effect where the batch ends (`cairn.current.run_in_effect`: a
        `with repo.run(...)` block, an orchestrator's `current_run()`), if this
        filesystem's catalog knows it (a run of another catalog is no lineage here)."""
        if self._run is not None:
            return self._run
        if self._run_id is not None:
            found: Run = self._call(self.repository.get_run, self._run_id)
            return found
        run = run_in_effect()
        if run is None or run.repository is self.repository:
            return run
        try:
            known: Run = self._call(self.repository.get_run, run.id)
        except NotFound:
            return None
        return known

    def _written(self, target: Target, local: str) -> None:
        """A file opened for writing was closed with its bytes in `local`."""
        with self._batch() as batch:
            self._changes(batch, target).put_file(target.inner, local)

    def _changes(self, batch: Batch, target: Target) -> Changes:
        key = target.collection
        with self._lock:
            if key in batch.changes:
                return batch.changes[key]
        base = batch.seen.get(key)
        if base is None:
            base = self._call(latest, self.repository, target.project, target.name)
            if base is not None:
                batch.seen[key] = base
        changes = Changes(
            target.project,
            target.name,
            base=base.manifest if base is not None else _EMPTY,
            base_digest=base.digest if base is not None else None,
            base_index=base.index if base is not None else None,
        )
        with self._lock:
            batch.changes.setdefault(key, changes)
        return batch.changes[key]

    def _target(self, path: str, *, hint: str = "write files inside it") -> Target:
        """Where a write to `path` goes: IsADirectoryError for a collection itself."""
        target = Target.of(path, default_project=self.repository.default_project)
        if not target.inner:
            raise IsADirectoryError(f"cairn://{path} is a collection: {hint}")
        return target

    def _exists_for_write(self, target: Target, path: str) -> bool:
        """Whether `path` exists in the collection's latest or among this thread's
        uncommitted writes."""
        batch = self._current()
        changes = batch.changes.get(target.collection) if batch is not None else None
        if changes is not None:
            if changes.written(target.inner) or target.inner in changes.folders:
                return True
            if target.inner in changes.removed:
                return False
        try:
            self.info(f"{target.collection}/{target.inner}")
            return True
        except FileNotFoundError:
            return False

    def _below(self, target: Target) -> list[str]:
        """Manifest paths of the latest at or below the target."""
        try:
            tree = self._version(f"{target.collection}:latest")[1]
        except FileNotFoundError:
            return []
        return tree.below(target.inner)
