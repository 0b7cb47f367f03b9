"""Writing through `cairn://`: files opened for writing, and the batches (implicit per
call, or `with fs.transaction:`) whose changes become one version per collection."""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile
from fsspec.transaction import Transaction

from .changes import Changes, drop, local_file
from .paths import Target

if TYPE_CHECKING:
    from ..version import ArtifactVersion
    from .filesystem import CairnFileSystem


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
