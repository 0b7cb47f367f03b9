"""A version's files as folders, listed a page at a time (what a file browser needs).

`ArtifactVersion.files()` builds and checks an `Entry` for every file: on a version of 100k
files that is most of a second. A browser shows one folder at a time, so `FileTree` lists a
folder by bisecting over the sorted paths: every path under a folder `a/` lies between `a/`
and `a0` ('0' follows '/'), so a child folder is skipped in one bisection. An `Entry` (its
path checked, DESIGN invariant 10) is built only for a file asked for by name.

Two ways to hold the paths. The *index* (running totals of the sizes, every entry's place)
gives each folder its size and file count; building it touches every entry, in C code
(cairn.manifest_text), about as much as parsing the JSON. A *quick* listing
(`sizes=False`) reads the manifest's text in place: a few bisections over its bytes find
each child, a folder's file count is one `bytes.count`, and only the sizes of folders are
left out (None): a version of 100k files shows its first page in the time it takes to
decompress the manifest. Manifests with references are parsed (cairn.manifest_text says
why).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import lt
from typing import Any, overload

from ..foundation.errors import NotFound
from ..foundation.manifest import DIR, FILE, Entry, read_document, verified_json
from ..foundation.manifest_text import ManifestText
from ..foundation.names import check_path

#: a quick listing of a folder with more children than this builds the index instead
QUICK_CHILDREN = 5000


@dataclass(frozen=True)
class TreeItem:
    """A file (or a link), or a folder with the number and total size of the files under it."""

    path: str  # full path inside the version; a folder's has no trailing '/'
    name: str  # the last segment
    is_folder: bool
    size: int | None  # a folder's is None in a quick listing
    files: int  # 1 for a file
    kind: str = FILE  # FILE, LINK or DIR (manifest entry kinds); a folder with files: DIR


@dataclass(frozen=True)
class FolderPage:
    """One page of a folder's children: folders first, then files, each by name."""

    folder: str  # '' for the root
    items: tuple[TreeItem, ...]
    total: int  # children of the folder (folders and files)
    offset: int
    limit: int
    size: int | None  # bytes under the folder (None in a quick listing)
    files: int  # files under the folder, at any depth

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total

    @classmethod
    def of(
        cls,
        folder: str,
        children: list[TreeItem],
        offset: int,
        limit: int,
        size: int | None,
        files: int,
    ) -> FolderPage:
        """The page of `children` (already in order) that starts at `offset`."""
        return cls(
            folder=folder,
            items=tuple(children[offset : offset + max(0, limit)]),
            total=len(children),
            offset=offset,
            limit=limit,
            size=size,
            files=files,
        )


Children = tuple[list[TreeItem], list[TreeItem]]


class FileTree:
    """The paths and sizes of one manifest, for listing folders a page at a time."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]]):
        """From a manifest's `entries` (path -> its JSON object), in any order."""
        paths = list(entries)
        if not all(map(lt, paths, paths[1:])):  # a canonical manifest is sorted already
            entries = {p: entries[p] for p in sorted(paths)}
            paths = list(entries)
        self._text: ManifestText | None = None
        sizes = [e.get("size", 0) for e in entries.values()]  # links and folders have none
        self._indexed(paths, sizes, entries.__getitem__)
        #: links and empty folders (format 2 manifests), by path
        self._kinds = {p: e["kind"] for p, e in entries.items() if e.get("kind", FILE) != FILE}

    @classmethod
    def from_bytes(cls, body: bytes, *, expect_digest: str | None = None) -> FileTree:
        """From a stored manifest (compressed or not), checked against its digest."""
        text = verified_json(body, expect_digest=expect_digest)
        readable = ManifestText.of(text)
        if readable is None:
            return cls(read_document(text)["entries"])
        tree = cls.__new__(cls)
        tree._text = readable
        tree._paths = None
        tree._children = {}
        tree._quick = {}
        tree._kinds = {}  # format 1: files only
        return tree

    def _indexed(
        self, paths: Sequence[str], sizes: Sequence[int], raw: Callable[[str], Mapping[str, Any]]
    ) -> None:
        self._paths: Sequence[str] | None = paths
        self._totals = [0, *accumulate(sizes)]
        self._raw = raw  # a path -> its JSON object, parsed when asked for
        self._children: dict[str, Children] = {}
        self._quick: dict[str, Children] = {}

    def _index(self) -> Sequence[str]:
        """The index (see the module's docstring), built on first use."""
        if self._paths is None:
            text = self._text
            assert text is not None
            starts, sizes = text.index()
            paths = _IndexedPaths(text, starts)
            self._indexed(paths, sizes, lambda p: _entry_json(text, starts[paths.find(p)]))
        assert self._paths is not None
        return self._paths

    @property
    def plain(self) -> bool:
        """Files only (no links, no empty folders): a path names itself, no link between."""
        return not self._kinds

    @property
    def indexed(self) -> bool:
        """Whether folders' sizes are known (the index is built)."""
        return self._paths is not None

    def __len__(self) -> int:
        if self._paths is None:
            assert self._text is not None
            return len(self._text)
        return len(self._paths)

    def paths(self) -> tuple[str, ...]:
        """Every file's path, sorted."""
        return tuple(self._index())

    def first_path_ending(self, suffixes: Sequence[str]) -> str | None:
        """The first path (in order) ending with the first of `suffixes` any path ends with."""
        for suffix in suffixes:
            if self._text is not None and self._paths is None:
                found = self._text.first_key_ending(suffix)
            else:
                found = next((p for p in self._index() if p.endswith(suffix)), None)
            if found is not None:
                return found
        return None

    def is_file(self, path: str) -> bool:
        """True for a file or a link; an empty folder's entry is a folder."""
        return self._kinds.get(path) != DIR and self._find(path) is not None

    def is_folder(self, path: str) -> bool:
        """True for '' (the root), every folder some file lies under, and empty folders."""
        if not path or self._kinds.get(path.rstrip("/")) == DIR:
            return True
        prefix = path.rstrip("/") + "/"
        if self._paths is None:
            assert self._text is not None
            start = self._text.lower_bound(prefix)
            return start < self._text.end and self._text.path(start).startswith(prefix)
        lo, hi = self._span(prefix)
        return hi > lo

    def entry(self, path: str) -> Entry:
        """The entry of one file (NotFound if it is not a file of the version)."""
        path = check_path(path)
        raw = self._find(path)
        if raw is None:
            raise NotFound(f"no file {path!r} in this version")
        return Entry.from_json(path, raw)

    def _find(self, path: str) -> Mapping[str, Any] | None:
        if self._paths is None:
            assert self._text is not None
            start = self._text.lower_bound(path)
            if start < self._text.end and self._text.path(start) == path:
                return _entry_json(self._text, start)
            return None
        i = bisect_left(self._paths, path)
        if i < len(self._paths) and self._paths[i] == path:
            return self._raw(path)
        return None

    def listdir(
        self, folder: str = "", *, offset: int = 0, limit: int = 100, sizes: bool = True
    ) -> FolderPage:
        """Up to `limit` children of `folder` from `offset` on (NotFound if no such folder).

        `sizes=False` may leave folders' sizes out (None) to answer at once on a large
        version; they are there once the index is built (`indexed`)."""
        folder = check_path(folder) if folder else ""
        if not self.is_folder(folder):
            raise NotFound(f"no folder {folder!r} in this version")
        offset = max(0, offset)
        quick = None if sizes or self.indexed else self._quick_list(folder)
        if quick is not None:
            folders, files = quick
            assert self._text is not None
            start, stop = self._text_span(folder)
            size, count = None, self._text.count(start, stop)
        else:
            folders, files = self._list(folder)
            prefix = folder + "/" if folder else ""
            lo, hi = self._span(prefix)
            size, count = self._totals[hi] - self._totals[lo], hi - lo - self._empty_folders(prefix)
        return FolderPage.of(folder, folders + files, offset, limit, size, count)

    def _empty_folders(self, prefix: str) -> int:
        """Empty-folder entries under `prefix` (they are not files)."""
        return sum(1 for p, k in self._kinds.items() if k == DIR and p.startswith(prefix))

    def _span(self, prefix: str) -> tuple[int, int]:
        """Index range of the paths starting with `prefix` ('' or ending in '/')."""
        paths = self._index()
        if not prefix:
            return 0, len(paths)
        lo = bisect_left(paths, prefix)
        return lo, bisect_left(paths, prefix[:-1] + "0", lo)

    def _list(self, folder: str) -> Children:
        """A folder's child folders and files (cached: pages of one folder share it)."""
        if folder in self._children:
            return self._children[folder]
        prefix = folder + "/" if folder else ""
        i, end = self._span(prefix)
        folders: list[TreeItem] = []
        files: list[TreeItem] = []
        paths, totals, start = self._index(), self._totals, len(prefix)
        while i < end:
            path = paths[i]
            slash = path.find("/", start)
            if slash < 0:
                kind = self._kinds.get(path, FILE)
                if kind == DIR:  # an empty folder
                    folders.append(TreeItem(path, path[start:], True, 0, 0, DIR))
                else:
                    size = totals[i + 1] - totals[i]
                    files.append(TreeItem(path, path[start:], False, size, 1, kind))
                i += 1
                continue
            sub = path[:slash]
            stop = bisect_left(paths, sub + "0", i, end)
            count = stop - i - self._empty_folders(sub + "/")
            folders.append(TreeItem(sub, sub[start:], True, totals[stop] - totals[i], count, DIR))
            i = stop
        self._children[folder] = by_name(folders, files)
        return self._children[folder]

    def _text_span(self, folder: str) -> tuple[int, int]:
        """Where the entries under `folder` are in the manifest's text."""
        text = self._text
        assert text is not None
        if not folder:
            return text.first, text.end
        start = text.lower_bound(folder + "/")
        return start, text.lower_bound(folder + "0", start)

    def _quick_list(self, folder: str) -> Children | None:
        """A folder's children read in place from the text (folder sizes left out); None
        when it has more than QUICK_CHILDREN (the index lists those faster)."""
        if folder in self._quick:
            return self._quick[folder]
        text = self._text
        assert text is not None
        prefix = folder + "/" if folder else ""
        pos, end = self._text_span(folder)
        folders: list[TreeItem] = []
        files: list[TreeItem] = []
        while pos < end:
            if len(folders) + len(files) >= QUICK_CHILDREN:
                return None
            path = text.path(pos)
            slash = path.find("/", len(prefix))
            if slash < 0:
                files.append(TreeItem(path, path[len(prefix) :], False, text.size(pos), 1))
                pos = text.next(pos)
                continue
            sub = path[:slash]
            stop = text.lower_bound(sub + "0", pos, end)
            folders.append(
                TreeItem(sub, sub[len(prefix) :], True, None, text.count(pos, stop), DIR)
            )
            pos = stop
        self._quick[folder] = by_name(folders, files)
        return self._quick[folder]


def by_name(folders: list[TreeItem], files: list[TreeItem]) -> Children:
    # sorted paths list 'a-b/x' before 'a.txt' before 'a/x': sort each kind by name
    folders.sort(key=lambda t: t.name)
    files.sort(key=lambda t: t.name)
    return folders, files


def _entry_json(text: ManifestText, start: int) -> Mapping[str, Any]:
    ((_, entry),) = json.loads(text.entry_json(start)).items()
    return dict(entry)


class _IndexedPaths(Sequence[str]):
    """The paths of a manifest's text by entry number, each read when first looked at."""

    def __init__(self, text: ManifestText, starts: list[int]):
        self._text = text
        self._starts = starts  # every entry's start, then the end
        self._read: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...

    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        path = self._read.get(i)
        if path is None:
            path = self._read[i] = self._text.path(self._starts[i])
        return path

    def find(self, path: str) -> int:
        return bisect_left(self, path)
