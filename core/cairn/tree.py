"""A version's files as folders, listed a page at a time (what a file browser needs).

`ArtifactVersion.files()` builds and checks an `Entry` for every file: on a version of 100k
files that is most of a second. A browser shows one folder at a time, so `FileTree` keeps
the manifest's paths (sorted, as the canonical manifest stores them) and running totals of
their sizes, and lists a folder by bisecting over the sorted paths: every path under a
folder `a/` lies between `a/` and `a0` ('0' follows '/'), so a child folder is skipped in
one bisection and its size and file count come from the running totals. An `Entry` (its
path checked, DESIGN invariant 10) is built only for a file asked for by name.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter, lt
from typing import Any

from .errors import NotFound
from .manifest import Entry, parse_document
from .names import check_path


@dataclass(frozen=True)
class TreeItem:
    """A file, or a folder with the number and total size of the files under it."""

    path: str  # full path inside the version; a folder's has no trailing '/'
    name: str  # the last segment
    is_folder: bool
    size: int
    files: int  # 1 for a file


@dataclass(frozen=True)
class FolderPage:
    """One page of a folder's children: folders first, then files, each by name."""

    folder: str  # '' for the root
    items: tuple[TreeItem, ...]
    total: int  # children of the folder (folders and files)
    offset: int
    limit: int
    size: int  # bytes under the folder
    files: int  # files under the folder, at any depth

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


class FileTree:
    """The paths and sizes of one manifest, for listing folders a page at a time."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]]):
        """From a manifest's `entries` (path -> its JSON object), in any order."""
        paths = list(entries)
        if not all(map(lt, paths, paths[1:])):  # a canonical manifest is sorted already
            entries = {p: entries[p] for p in sorted(paths)}
            paths = list(entries)
        sizes = list(map(itemgetter("size"), entries.values()))
        self._setup(paths, sizes, lambda i: entries[paths[i]])

    def _setup(
        self, paths: list[str], sizes: Sequence[int], raw: Callable[[int], Mapping[str, Any]]
    ) -> None:
        self._paths = paths
        self._totals = [0, *accumulate(sizes)]
        self._raw = raw  # entry index -> its JSON object, parsed when asked for
        self._children: dict[str, tuple[list[TreeItem], list[TreeItem]]] = {}

    @classmethod
    def from_bytes(cls, body: bytes, *, expect_digest: str | None = None) -> FileTree:
        """From a stored manifest (compressed or not), checked against its digest."""
        return cls(parse_document(body, expect_digest=expect_digest)["entries"])

    def __len__(self) -> int:
        return len(self._paths)

    def paths(self) -> tuple[str, ...]:
        """Every file's path, sorted."""
        return tuple(self._paths)

    def _index(self, path: str) -> int | None:
        i = bisect_left(self._paths, path)
        return i if i < len(self._paths) and self._paths[i] == path else None

    def is_file(self, path: str) -> bool:
        return self._index(path) is not None

    def is_folder(self, path: str) -> bool:
        """True for '' (the root) and every folder some file lies under."""
        if not path:
            return True
        lo, hi = self._span(path.rstrip("/") + "/")
        return hi > lo

    def entry(self, path: str) -> Entry:
        """The entry of one file (NotFound if it is not a file of the version)."""
        path = check_path(path)
        i = self._index(path)
        if i is None:
            raise NotFound(f"no file {path!r} in this version")
        return Entry.from_json(path, self._raw(i))

    def listdir(self, folder: str = "", *, offset: int = 0, limit: int = 100) -> FolderPage:
        """Up to `limit` children of `folder` from `offset` on (NotFound if no such folder)."""
        folder = check_path(folder) if folder else ""
        if not self.is_folder(folder):
            raise NotFound(f"no folder {folder!r} in this version")
        folders, files = self._list(folder)
        children = folders + files
        offset = max(0, offset)
        lo, hi = self._span(folder + "/" if folder else "")
        return FolderPage(
            folder=folder,
            items=tuple(children[offset : offset + max(0, limit)]),
            total=len(children),
            offset=offset,
            limit=limit,
            size=self._totals[hi] - self._totals[lo],
            files=hi - lo,
        )

    def _span(self, prefix: str) -> tuple[int, int]:
        """Index range of the paths starting with `prefix` ('' or ending in '/')."""
        if not prefix:
            return 0, len(self._paths)
        lo = bisect_left(self._paths, prefix)
        return lo, bisect_left(self._paths, prefix[:-1] + "0", lo)

    def _list(self, folder: str) -> tuple[list[TreeItem], list[TreeItem]]:
        """A folder's child folders and files (cached: pages of one folder share it)."""
        if folder in self._children:
            return self._children[folder]
        prefix = folder + "/" if folder else ""
        i, end = self._span(prefix)
        folders: list[TreeItem] = []
        files: list[TreeItem] = []
        paths, totals, start = self._paths, self._totals, len(prefix)
        while i < end:
            path = paths[i]
            slash = path.find("/", start)
            if slash < 0:
                files.append(TreeItem(path, path[start:], False, totals[i + 1] - totals[i], 1))
                i += 1
                continue
            sub = path[:slash]
            stop = bisect_left(paths, sub + "0", i, end)
            folders.append(TreeItem(sub, sub[start:], True, totals[stop] - totals[i], stop - i))
            i = stop
        # sorted paths list 'a-b/x' before 'a.txt' before 'a/x': sort each kind by name
        folders.sort(key=lambda t: t.name)
        files.sort(key=lambda t: t.name)
        self._children[folder] = (folders, files)
        return folders, files
