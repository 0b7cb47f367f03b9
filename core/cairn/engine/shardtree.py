"""A format-3 version's files as folders, each listing reading only the shards it needs.

Every path under a folder `f/` lies between `f/` and `f0`, so a folder's listing reads the
shards whose range meets that span; of those, a shard whose first and last paths lie in
the same child folder is counted whole from what its root says of it (entries, files,
size), unread. A path's lookup reads the one shard that can hold it. On a version of a
million files a listing of any folder thus reads a few shards, not the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..foundation.errors import NotFound
from ..foundation.manifest import DIR, FILE, KINDS, Entry, ShardedManifest
from ..foundation.manifest_entry import unknown_kind
from ..foundation.names import check_path
from .tree import Children, FileTree, FolderPage, TreeItem, by_name


class ShardedTree(FileTree):
    """`FileTree`'s surface (listdir, entry, is_file, is_folder) over a `ShardedManifest`."""

    def __init__(self, manifest: ShardedManifest):  # no FileTree index: nothing to build
        self._m = manifest
        self._listed: dict[str, tuple[Children, int, int]] = {}

    @property
    def indexed(self) -> bool:
        """Folder sizes are always known: the root records each shard's."""
        return True

    @property
    def plain(self) -> bool:
        """Links may be anywhere: paths are resolved through the manifest."""
        return False

    def __len__(self) -> int:
        return len(self._m)

    def paths(self) -> tuple[str, ...]:
        return tuple(self._m)

    def first_path_ending(self, suffixes: Sequence[str]) -> str | None:
        """The first path (in order) ending with the first of `suffixes` any path ends with."""
        for suffix in suffixes:
            found = next((p for p in self._m if p.endswith(suffix)), None)
            if found is not None:
                return found
        return None

    def entry(self, path: str) -> Entry:
        path = check_path(path)
        e = self._m.get(path)
        if e is None or e.kind == DIR:
            raise NotFound(f"no file {path!r} in this version")
        return e

    def is_file(self, path: str) -> bool:
        e = self._m.get(path)
        return e is not None and e.kind != DIR

    def is_folder(self, path: str) -> bool:
        path = path.rstrip("/")
        if not path:
            return True
        e = self._m.get(path)
        if e is not None:
            return e.kind == DIR
        prefix = path + "/"
        return next((p.startswith(prefix) for p in self._m.keys_from(prefix)), False)

    def listdir(
        self, folder: str = "", *, offset: int = 0, limit: int = 100, sizes: bool = True
    ) -> FolderPage:
        """Up to `limit` children of `folder` from `offset` on (NotFound if no such folder);
        sizes are always there (`sizes` is accepted for FileTree's sake)."""
        folder = check_path(folder) if folder else ""
        if not self.is_folder(folder):
            raise NotFound(f"no folder {folder!r} in this version")
        (folders, files), size, count = self._listing(folder)
        return FolderPage.of(folder, folders + files, max(0, offset), limit, size, count)

    def _listing(self, folder: str) -> tuple[Children, int, int]:
        """A folder's children, its size and its file count (cached per folder)."""
        if folder in self._listed:
            return self._listed[folder]
        prefix = folder + "/" if folder else ""
        start = len(prefix)
        end = folder + "0" if folder else None
        sub: dict[str, list[int]] = {}  # child folder -> [size, files]
        files: list[TreeItem] = []
        empty: list[TreeItem] = []
        for i, ref in enumerate(self._m.shards):
            if ref.last < prefix or (end is not None and ref.first >= end):
                continue
            whole = _child(ref.first, prefix)
            if whole is not None and whole == _child(ref.last, prefix):
                tally = sub.setdefault(whole, [0, 0])
                tally[0] += ref.size
                tally[1] += ref.files
                continue
            # the shard's JSON, no Entry made per path: a page of a 20,000-file version
            # reads every shard; what is shown is checked below
            for path, e in self._m.raw(i).items():
                if not path.startswith(prefix) or path == folder:
                    continue
                kind = e.get("kind", FILE)
                if kind not in KINDS:
                    raise unknown_kind(path, kind)
                name = _child(path, prefix)
                if name is not None:
                    tally = sub.setdefault(name, [0, 0])
                    tally[0] += int(e.get("size") or 0) if kind == FILE else 0
                    tally[1] += kind != DIR
                elif kind == DIR:
                    empty.append(TreeItem(check_path(path), path[start:], True, 0, 0, DIR))
                else:
                    size = int(e.get("size") or 0) if kind == FILE else 0
                    files.append(TreeItem(check_path(path), path[start:], False, size, 1, kind))
        folders = [
            TreeItem(check_path(prefix + name), name, True, size, count, DIR)
            for name, (size, count) in sub.items()
        ]
        size = sum(t.size or 0 for t in folders) + sum(t.size or 0 for t in files)
        count = sum(t.files for t in folders) + len(files)
        self._listed[folder] = (by_name(folders + empty, files), size, count)
        return self._listed[folder]


def _child(path: str, prefix: str) -> str | None:
    """The name of the child folder of `prefix` that `path` lies in; None if `path` is
    not under `prefix` or is a direct child (a file, link or empty folder there)."""
    if not path.startswith(prefix):
        return None
    slash = path.find("/", len(prefix))
    return None if slash < 0 else path[len(prefix) : slash]
