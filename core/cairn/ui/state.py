"""What every request of the UI shares: the repository, opened once, and a few caches.

The UI only reads: it calls the public API's reading verbs and never one that writes.
A manifest never changes once committed (DESIGN invariant 1), so the versions whose
files were read are kept, and a second page of a large folder costs no parse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from ..engine.tree import FileTree
from ..repository import Repository
from ..version import ArtifactVersion

Opener = Callable[[], Repository]
#: links from a run (its JSON document) to its page in the orchestrator: [{label, url}]
RunLinks = Callable[[dict[str, Any]], list[dict[str, str]]]

#: versions whose file trees are kept (a 100k-file version's tree is tens of MB)
VERSIONS_CACHED = 4


class UIState:
    """The repository (or how to open it: on first use, so an orchestrator's web server
    starts even while the catalog is unreachable) and the versions whose files were read."""

    def __init__(self, repository: Repository | Opener, *, run_links: RunLinks | None = None):
        self.run_links: RunLinks = run_links or (lambda run: [])
        self._repo = repository if isinstance(repository, Repository) else None
        self._opener = None if isinstance(repository, Repository) else repository
        self._lock = threading.Lock()
        self._readers: OrderedDict[int, ArtifactVersion] = OrderedDict()

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            with self._lock:
                if self._repo is None:
                    assert self._opener is not None
                    self._repo = self._opener()
        return self._repo

    def reader(self, v: ArtifactVersion) -> ArtifactVersion:
        """A handle on `v` for reading its files: the same object across requests, so its
        file tree is parsed once (files never change; only metadata and aliases do, and
        those are read from `v` itself)."""
        with self._lock:
            known = self._readers.get(v.id)
            if known is not None and known.digest == v.digest:
                self._readers.move_to_end(v.id)
                return known
            self._readers[v.id] = v
            while len(self._readers) > VERSIONS_CACHED:
                self._readers.popitem(last=False)
        return v

    def tree(self, v: ArtifactVersion) -> FileTree:
        """The version's file tree (NotFound while it is pending)."""
        return self.reader(v).file_tree()

    def close(self) -> None:
        """Close the repository if the UI opened it (one handed in stays the caller's)."""
        if self._opener is not None and self._repo is not None:
            self._repo.close()
            self._repo = None


def ui_state(request: Request) -> UIState:
    state: UIState = request.app.state.cairn
    return state


UI = Annotated[UIState, Depends(ui_state)]
