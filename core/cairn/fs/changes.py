"""Edits of one collection made through `cairn://`, waiting to become a version.

Writes through the filesystem are gathered per collection (a `Changes`) and committed
as one version derived from the collection's latest (`cairn.fs.commit`). `base` is the
latest version when the first edit was made: if another writer committed since, their
changes and these must touch different paths (then both are kept), else the commit is
a `Conflict`, as for `log_artifact` of a draft whose parent is no longer the latest.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field

from ..foundation.errors import Conflict, IntegrityError
from ..foundation.manifest import DIR, Diff, Entry, Manifest


@dataclass
class Changes:
    """New files (local copies), ready entries (copies of stored content), removed paths
    and new empty folders of `project/name`, made on top of version `base_digest`
    (None: the collection had no version)."""

    project: str
    name: str
    base: Manifest
    base_digest: str | None
    base_index: int | None
    files: dict[str, str] = field(default_factory=dict)  # path -> local file
    entries: dict[str, Entry] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)

    @property
    def collection(self) -> str:
        return f"{self.project}/{self.name}"

    def put_file(self, path: str, local: str) -> None:
        """`path` gets the bytes of `local`, a file made by `local_file()` that these
        changes now own (deleted when they are discarded or replaced)."""
        self._forget(path)
        self.files[path] = local

    def put_entry(self, entry: Entry) -> None:
        self._forget(entry.path)
        self.entries[entry.path] = entry

    def remove(self, path: str) -> None:
        self._forget(path)
        self.removed.add(path)

    def add_folder(self, path: str) -> None:
        self.removed.discard(path)
        self.folders.add(path)

    def touched(self) -> set[str]:
        return set(self.files) | set(self.entries) | self.removed | self.folders

    def written(self, path: str) -> bool:
        """Whether `path` is a file written by these changes (not yet committed)."""
        return path in self.files or path in self.entries

    def check_mergeable(self, latest: Manifest) -> None:
        """Conflict unless what others committed since `base` (giving `latest`) touches
        none of the paths these changes touch."""
        theirs = Diff.between(self.base, latest)
        clash = sorted(
            p
            for p in {*theirs.added, *theirs.removed, *theirs.modified} & self.touched()
            if not self._same(p, latest)
        )
        if clash:
            shown = ", ".join(clash[:5]) + (" ..." if len(clash) > 5 else "")
            raise Conflict(
                f"cairn://{self.collection}: another writer changed {shown} since "
                f"v{self.base_index} this write was based on; read the latest version "
                "and write again"
            )

    def manifest(self, kept: list[Entry], staged: list[Entry]) -> Manifest:
        """The new version's manifest: `kept` (the latest's entries minus removed and
        replaced ones), the `staged` new entries and the new empty folders."""
        new = [*kept, *staged, *(Entry.folder(p) for p in sorted(self.folders))]
        new += [Entry.folder(p) for p in self._emptied(new)]
        try:
            return Manifest(new)
        except IntegrityError as exc:
            raise Conflict(f"cairn://{self.collection}: {exc}") from None

    def _emptied(self, entries: list[Entry]) -> set[str]:
        """Folders left empty by removing what was in them: they stay, as on a disk
        (removing a folder itself, `rm -r`, names it among the removed paths)."""
        present: set[str] = set()
        for e in entries:
            head = e.path
            while head and head not in present:
                present.add(head)
                head = head.rpartition("/")[0]
        out: set[str] = set()
        for p in self.removed:
            parent = p.rpartition("/")[0]
            if parent and parent not in present and not self._removed_below(parent):
                out.add(parent)
        return out

    def _removed_below(self, folder: str) -> bool:
        """Whether `folder` or a folder above it was removed itself."""
        while folder:
            if folder in self.removed:
                return True
            folder = folder.rpartition("/")[0]
        return False

    def kept(self, latest: Manifest) -> list[Entry]:
        """The latest version's entries these changes keep."""
        gone = self.removed | set(self.files) | set(self.entries)
        return [e for p, e in latest.items() if p not in gone]

    def discard(self) -> None:
        """Delete the local copies of written files."""
        for local in self.files.values():
            drop(local)
        self.files.clear()

    def _forget(self, path: str) -> None:
        old = self.files.pop(path, None)
        if old is not None:
            drop(old)
        self.entries.pop(path, None)
        self.removed.discard(path)
        self.folders.discard(path)

    def _same(self, path: str, latest: Manifest) -> bool:
        """Whether the latest already has what these changes want at `path` (no clash)."""
        theirs = latest.get(path)
        if path in self.removed:
            return theirs is None
        if path in self.folders:
            return theirs is not None and theirs.kind == DIR
        mine = self.entries.get(path)
        return theirs is not None and mine is not None and mine.same_content(theirs)


def local_file() -> str:
    """A new empty local file to write the bytes of one path into before they are
    committed (a temporary file: `Changes.put_file` takes it over)."""
    fd, path = tempfile.mkstemp(prefix="cairn-fs-")
    os.close(fd)
    return path


def drop(local: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(local)
