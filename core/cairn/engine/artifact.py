"""`Artifact`: the client-side builder of a version (files, folders, new files, removals)."""

from __future__ import annotations

import heapq
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ..foundation.errors import CairnError, Conflict, NotFound
from ..foundation.manifest import Entry, Manifest, build
from ..foundation.names import check_name, check_path, join_path
from .manifest_overlay import overlay
from .walk import Listing, found, walk

if TYPE_CHECKING:
    from .needs import DraftParent


class Artifact:
    """Files to log as the next version of a collection `name` of type `type`.

    A draft (from `ArtifactVersion.new_draft()`) starts from its parent's manifest: only
    what is added or removed is hashed and stored when it is logged, and only the parent's
    manifest shards those changes fall in are read and rewritten.
    """

    def __init__(
        self,
        name: str,
        type: str = "dataset",
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self.name = check_name(name, kind="artifact name")
        self.type = check_name(type, kind="artifact type")
        self.description = description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._files: dict[str, str] = {}  # logical path -> absolute local path
        #: folders added whole: listed again when the artifact is logged
        self._folders: list[_Folder] = []
        self._entries: dict[str, Entry] = {}  # logical path -> ready entry (references)
        self._base: Manifest | None = None
        self._parent: DraftParent | None = None
        #: the lease holding a draft's parent until the draft is logged (cairn.retain)
        self._lease: str | None = None
        self._removed: set[str] = set()
        self._tmpdir: str | None = None

    # -- adding ------------------------------------------------------------------------

    def add_file(self, local_path: str | os.PathLike[str], name: str | None = None) -> Artifact:
        """Add one local file at logical path `name` (default: its file name)."""
        path = os.fspath(local_path)
        if not os.path.isfile(path):
            raise NotFound(f"cannot add {path!r}: no such file")
        self._put(
            check_path(os.path.basename(path) if name is None else name), os.path.abspath(path)
        )
        return self

    def add_dir(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        *,
        follow_links: bool = False,
    ) -> Artifact:
        """Add everything below a local folder, under the prefix `name` (default: the root).

        Files, empty folders, and symbolic links that stay inside the folder (as links);
        a link pointing outside is refused unless `follow_links`, which logs what it
        points to instead (cairn.walk). The folder is checked now; its files are those it
        holds when the artifact is logged, listed again then as a sorted stream (a folder
        of a million files is never held in memory as a list), unless it is small and
        none of its folders changed since (cairn.walk.Listing).
        """
        root = os.path.abspath(os.fspath(local_path))
        if not os.path.isdir(root):
            raise NotFound(f"cannot add {os.fspath(local_path)!r}: no such folder")
        prefix = None if name is None else check_path(name)
        checked = walk(root, follow_links=follow_links, prefix=prefix)  # files counted
        if checked.outside_count:
            raise checked.refusal(os.fspath(local_path))
        folder = _Folder(root, prefix, follow_links, checked.files, checked.listing)
        if self._files or self._entries:  # a path added before from elsewhere: refused
            for path, local in folder.files():
                self._check_free(path, local)
        for e in checked.entries:
            self.add_entry(e.moved(join_path(prefix, e.path)))
        self._folders.append(folder)
        return self

    @contextmanager
    def new_file(
        self, name: str, mode: str = "w", encoding: str | None = "utf-8"
    ) -> Iterator[IO[Any]]:
        """Write a file straight into the artifact: `with art.new_file("a.txt") as f: ...`."""
        path = check_path(name)
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="cairn-new-")
            weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
        local = os.path.join(self._tmpdir, *path.split("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        if "b" in mode:
            encoding = None
        with open(local, mode, encoding=encoding) as f:
            yield f
        self._put(path, local)

    def add_entry(self, entry: Entry) -> Artifact:
        """Add a ready-made entry: a reference, content already in the store, a link
        (`Entry.link`) or an empty folder (`Entry.folder`)."""
        self._check_free(entry.path, None)
        self._entries[entry.path] = entry
        self._removed.discard(entry.path)
        return self

    def add_reference(
        self,
        uri: str,
        name: str | None = None,
        *,
        checksum: bool = True,
        max_objects: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> Artifact:
        """Record an object (or every object under a prefix) where it is, without copying it.

        s3://, gs://, file:// (or a local path) and https:// are supported. A single
        object is named `name` (default: its file name); a prefix's objects keep their
        paths below it, under the folder `name`. With `checksum` each entry pins the
        content (ETag/version id, generation/md5, mtime + BLAKE3, ETag/Last-Modified) and
        reading it later fails with ReferenceChanged if the source changed; without it
        only the URI is recorded. More than `max_objects` objects is an error.
        """
        from .references import entries

        found = entries(
            uri,
            name,
            checksum=checksum,
            max_objects=max_objects,
            storage_options=storage_options,
        )
        for e in found:  # all or nothing
            self._check_free(e.path, None)
        for e in found:
            self.add_entry(e)
        return self

    def remove(self, name: str) -> Artifact:
        """Remove a file, or every file under a folder, from this artifact or draft."""
        path = check_path(name)
        below = path + "/"
        hit = False
        for table in (self._files, self._entries):
            for p in [p for p in table if p == path or p.startswith(below)]:
                del table[p]
                hit = True
        for folder in self._folders:
            if folder.holds(path):
                folder.excluded.add(path)
                hit = True
        if self._base is not None:
            for p in self._base.under(path):  # a sharded parent reads only those shards
                self._removed.add(p)
                hit = True
        if not hit:
            raise NotFound(f"cannot remove {path!r}: no such file or folder in {self.name}")
        return self

    # -- reading -----------------------------------------------------------------------

    @property
    def parent(self) -> DraftParent | None:
        """The version a draft was made from."""
        return self._parent

    @property
    def local_files(self) -> dict[str, str]:
        """Every local file to log, by logical path (the added folders walked now)."""
        return dict(self.files())

    def files(self) -> Iterator[tuple[str, str]]:
        """The local files to log, (logical path, local path), in path order: the added
        folders walked as streams, merged with the files added one by one."""
        streams = [iter(sorted(self._files.items()))] if self._files else []
        streams += [f.files() for f in self._folders]
        if len(streams) == 1:  # one folder's walk or the single files: in order, unique
            yield from streams[0]
            return
        last: tuple[str, str] | None = None
        for item in heapq.merge(*streams, key=_first):
            if last is not None and item[0] == last[0]:
                if item[1] != last[1]:
                    raise Conflict(
                        f"{item[0]!r} was added from both {last[1]!r} and {item[1]!r}; "
                        "remove one first"
                    )
                continue
            last = item
            yield item

    def expected_bytes(self) -> int:
        """About how many bytes the local files hold, for a progress bar: the folders are
        walked again to count them, so a log nobody watches never asks."""
        single = sum(os.path.getsize(p) for p in self._files.values() if os.path.exists(p))
        return single + sum(f.size() for f in self._folders)

    def has_files(self) -> bool:
        """Whether local files were added (the folders counted when they were added)."""
        return bool(self._files) or any(f.count for f in self._folders)

    @property
    def entries(self) -> dict[str, Entry]:
        return dict(self._entries)

    def base_entries(self) -> list[Entry]:
        """Entries kept from the draft's parent (all of them minus removed and replaced)."""
        if self._base is None:
            return []
        return [
            e
            for p, e in self._base.items()
            if p not in self._removed and p not in self._files and p not in self._entries
        ]

    def has_content(self) -> bool:
        """Whether logging it would make a version with at least one entry (without
        reading a draft's parent: what was removed is part of it)."""
        if self.has_files() or self._entries:
            return True
        return self._base is not None and len(self._base) > len(self._removed)

    def compose(self, new: Iterable[Entry]) -> Manifest:
        """The manifest of this artifact once its files are `new` entries: a draft's is its
        parent's with the changes merged in, reading only the parent's shards they touch
        (cairn.manifest_overlay)."""
        return overlay(self._base, [*new, *self._entries.values()], self._removed)

    def stream(self, new: Iterator[Entry]) -> Manifest:
        """`compose` for entries of the local files that come as a stream in path order
        (`files()`'s): a new artifact's manifest is cut into shards as they come, with
        the ready-made entries merged in (one of theirs wins over a file of its path);
        a draft's changes are few and go through `compose`."""
        if self._base is not None:
            return self.compose(new)
        if not self._entries:
            return build(new)
        ready = sorted(self._entries.values(), key=_path)
        merged = heapq.merge(new, ready, key=_path)
        return build(_latest(merged))

    def __repr__(self) -> str:
        kind = f"draft of {self._parent.ref}" if self._parent else "new"
        n = len(self._files) + sum(f.count for f in self._folders)
        return f"<Artifact {self.name} ({self.type}), {kind}, {n} files added>"

    # -- internals ---------------------------------------------------------------------

    def _put(self, path: str, local: str) -> None:
        self._check_free(path, local)
        self._files[path] = local
        self._removed.discard(path)

    def _check_free(self, path: str, local: str | None) -> None:
        previous = self._files.get(path)
        if previous is not None and previous != local:
            raise Conflict(
                f"{path!r} was already added from {previous!r}; remove it first to replace it"
            )
        if path in self._entries and local is not None:
            raise Conflict(f"{path!r} was already added as a reference; remove it first")
        for folder in self._folders:
            there = folder.local(path)
            if there is not None and there != local:
                raise Conflict(
                    f"{path!r} was already added from {there!r}; remove it first to replace it"
                )

    @classmethod
    def _draft(cls, parent: DraftParent, manifest: Manifest) -> Artifact:
        art = cls(
            parent.name,
            parent.type,
            description=parent.description,
            metadata=dict(parent.metadata),
        )
        art._base = manifest
        art._parent = parent
        return art


@dataclass
class _Folder:
    """A folder added whole: where it is, under which prefix, and what was removed of it."""

    root: str
    prefix: str | None
    follow: bool
    #: files it held when it was added
    count: int
    #: those files, if few, while the folder is as it was (cairn.walk.Listing)
    listing: Listing | None = None
    excluded: set[str] = field(default_factory=set)

    def files(self) -> Iterator[tuple[str, str]]:
        """Its files (logical path, local path) in path order, those removed left out:
        walked again, unless the listing its check made still stands."""
        if self.listing is not None and not self.listing.current():
            self.listing = None  # changed since: walked from now on
        items = iter(self.listing.files) if self.listing is not None else self._walked()
        for path, local in items:
            if not self.excluded or not self._excluded(path):
                yield path, local

    def _walked(self) -> Iterator[tuple[str, str]]:
        for item in found(self.root, follow_links=self.follow):
            if isinstance(item, tuple):
                yield join_path(self.prefix, item[0]), item[1]

    def size(self) -> int:
        """The bytes its files hold now (a file gone meanwhile counts nothing here: the
        log reports it when it reads the folder)."""
        total = 0
        for _, local in self.files():
            with suppress(OSError):
                total += os.stat(local).st_size
        return total

    def _excluded(self, path: str) -> bool:
        return any(path == x or path.startswith(x + "/") for x in self.excluded)

    def _inner(self, path: str) -> str | None:
        if self.prefix is None:
            return path
        return path[len(self.prefix) + 1 :] if path.startswith(self.prefix + "/") else None

    def holds(self, path: str) -> bool:
        """Whether `path` (a file or folder) is in it and not removed yet."""
        if self._excluded(path):
            return False
        if self.prefix is not None and (path == self.prefix or self.prefix.startswith(path + "/")):
            return True  # the folder itself, or a folder above it
        inner = self._inner(path)
        return inner is not None and os.path.lexists(os.path.join(self.root, *inner.split("/")))

    def local(self, path: str) -> str | None:
        """The local file it logs at `path`, if any."""
        inner = self._inner(path)
        if inner is None or self._excluded(path):
            return None
        local = os.path.join(self.root, *inner.split("/"))
        return local if os.path.isfile(local) else None


def _first(item: tuple[str, str]) -> str:
    return item[0]


def _path(e: Entry) -> str:
    return e.path


def _latest(entries: Iterator[Entry]) -> Iterator[Entry]:
    """Sorted entries with, of those of one path, the last one only."""
    pending: Entry | None = None
    for e in entries:
        if pending is not None and pending.path != e.path:
            yield pending
        pending = e
    if pending is not None:
        yield pending


def require_content(art: Artifact) -> None:
    if not art.has_content():
        raise CairnError(f"artifact {art.name} has no files; add some before logging it")
