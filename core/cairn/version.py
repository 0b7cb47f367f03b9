"""`ArtifactVersion`: one version of a collection, as the catalog records it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine.artifact import Artifact
from .engine.checkout import Target, checkout, reserved
from .engine.confined import make_folder
from .engine.contents import Contents
from .engine.download import cache_key
from .engine.shardtree import ShardedTree
from .engine.transfer import UploadStats
from .engine.tree import FileTree
from .engine.versionrecords import VersionRecords
from .foundation.errors import CairnError, Conflict, NotFound
from .foundation.manifest import (
    DIR,
    FILE,
    Entry,
    Manifest,
    ShardedManifest,
    is_sharded,
    verified_json,
)
from .foundation.names import LATEST, case_collisions, check_alias, check_path, check_user_alias

if TYPE_CHECKING:
    import pyarrow

    from .run import Run, Runs


@dataclass(frozen=True)
class VersionServices:
    """What a version handle works through: `Repository` builds one and hands it to
    every `ArtifactVersion` it gives out."""

    #: manifests and files
    contents: Contents
    #: edits, deletes and draft leases in the catalog
    records: VersionRecords
    #: the runs of its lineage
    runs: Runs


class ArtifactVersion:
    """A committed (or pending) version. The manifest is immutable; `description`,
    `metadata` and `aliases` can be edited and written back with `save()`."""

    def __init__(self, row: Any, aliases: list[str], services: VersionServices):
        self._contents = services.contents
        self._records = services.records
        self._runs = services.runs
        self.id: int = row.id
        self.project: str = row.project
        self.name: str = row.collection
        self.type: str = row.type
        self.index: int | None = row.idx
        self.digest: str | None = row.digest
        self.size: int = row.size
        self.file_count: int = row.file_count
        self.state: str = row.state
        self.distributed_id: str | None = row.distributed_id
        #: the store namespace holding its bytes: '' shared, else its private project's
        #: name (`projects/<name>/`); fixed when the version was created (docs/ACCESS.md)
        self.namespace: str = row.namespace
        self.created_at: datetime = row.created_at
        self.committed_at: datetime | None = row.committed_at
        self.description: str | None = row.description
        self.metadata: dict[str, Any] = dict(row.metadata or {})
        #: as read with this handle: `latest` moves on to newer versions without changing
        #: it (`repo.artifact(v.ref)` reads them again)
        self.aliases: list[str] = list(aliases)
        self._saved_aliases = list(aliases)
        self._run_id: str | None = row.run_id
        self._manifest: Manifest | None = None
        self._tree: FileTree | None = None
        #: what the log that returned this version stored (set by log_artifact)
        self.last_log: UploadStats | None = None
        #: True if that log made a new version, False if it returned an identical one
        self.created: bool | None = None

    # -- identity ----------------------------------------------------------------------

    @property
    def version(self) -> str:
        """'v3', or 'pending' for a distributed version not yet committed."""
        return f"v{self.index}" if self.index is not None else "pending"

    @property
    def ref(self) -> str:
        """A ref that names exactly this version: project/name:v3, or project/name@id while
        it is a PENDING distributed version."""
        if self.index is None and self.distributed_id is not None:
            return f"{self.project}/{self.name}@{self.distributed_id}"
        return f"{self.project}/{self.name}:{self.version}"

    def __repr__(self) -> str:
        return f"<ArtifactVersion {self.ref} {self.state} {self.size} bytes {self.aliases}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArtifactVersion) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- content -----------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            if self.digest is None:
                raise NotFound(f"{self.ref} is pending: its files are known once it is finished")
            self._manifest = self._contents.load_manifest(self.digest)
        return self._manifest

    def _sharded(self) -> ShardedManifest | None:
        """The manifest if it is format 3 (its root alone is read: lookups then read the
        one shard a path can be in); else None, and the file tree is ready."""
        if self._manifest is None and self._tree is None and self.digest is not None:
            body = self._contents.manifest_body(self.digest)
            text = verified_json(body, expect_digest=self.digest)
            if is_sharded(text):
                self._manifest = Manifest.from_bytes(text, load=self._contents.manifest_body)
            else:
                self._tree = FileTree.from_bytes(text)
        return self._manifest if isinstance(self._manifest, ShardedManifest) else None

    def file_tree(self) -> FileTree:
        """The files as folders, listed a page at a time (`tree.listdir("images")`):
        on a large version much cheaper than `files()`, which builds every entry."""
        if self._tree is None:
            if self.digest is None:
                raise NotFound(f"{self.ref} is pending: its files are known once it is finished")
            sharded = self._sharded()
            if sharded is not None:  # format 3: each listing reads the shards it needs
                self._tree = ShardedTree(sharded)
            elif self._tree is None:
                body = self._contents.manifest_body(self.digest)
                self._tree = FileTree.from_bytes(body, expect_digest=self.digest)
        return self._tree

    def files(self) -> list[Entry]:
        """Every entry of the version, in path order."""
        return list(self.manifest.values())

    def entry(self, path: str) -> Entry:
        """One file's entry (from the file tree unless the manifest is loaded: cheaper)."""
        if self._manifest is None and self.digest is not None and self._sharded() is None:
            try:
                return self.file_tree().entry(path)
            except NotFound:
                raise NotFound(f"{self.ref} has no file {path!r}") from None
        try:
            return self.manifest[check_path(path)]
        except KeyError:
            raise NotFound(f"{self.ref} has no file {path!r}") from None

    def download(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        force: bool = False,
        link: bool = False,
    ) -> Path:
        """Check the version out under `root` (default ./artifacts/PROJECT/NAME/vN), verified;
        returns the folder's absolute path.

        An empty or new folder gets the version; a previous checkout of the collection is
        updated in place; local edits, files cairn did not make and links stop it with a
        Conflict naming them, unless `force` (docs/FORMAT.md, "Checkouts"). Nothing is
        written outside `root` or through a link. Files are copies (copy-on-write clones
        where the file system can); `link=True` hardlinks them to the shared cache instead,
        read-only.
        """
        if root is None:
            root = Path("artifacts", self.project, self.name, self.version)
        try:
            target = os.path.abspath(root)
        except FileNotFoundError:
            raise CairnError(
                f"the current folder no longer exists: cannot place {self.ref} under it; "
                "pass an absolute root (--root)"
            ) from None
        manifest = self.manifest
        reserved(manifest)
        assert self.digest is not None
        with make_folder(target) as folder:
            if folder.case_insensitive():
                _refuse_case_collisions(self.ref, target, manifest)
            checkout(
                Target(self.ref, self.project, self.name, self.version, self.digest),
                manifest,
                folder,
                fetch=lambda entries: self._contents.fetch(entries, self.namespace),
                cache=self._contents.cache,
                load=self._contents.load_manifest,
                force=force,
                link=link,
            )
        return Path(target)

    def get_path(self, path: str) -> Path:
        """A verified, read-only local copy of one file (in the cache), downloaded if needed.

        A link is followed within the version."""
        e = self.resolve(path)
        return Path(self._contents.fetch([e], self.namespace)[cache_key(e)])

    def resolve(self, path: str) -> Entry:
        """The file entry `path` names, links followed within the version."""
        path = check_path(path)
        if (
            self._manifest is None
            and self.digest is not None
            and self._sharded() is None
            and self.file_tree().plain
        ):
            # no links: the path names itself (a large version's file tree is cheaper)
            tree = self.file_tree()
            if tree.is_file(path):
                return tree.entry(path)
            if tree.is_folder(path):
                raise NotFound(f"{self.ref}: {path!r} is a folder, not a file")
            raise NotFound(f"{self.ref} has no file {path!r}")
        real = self.manifest.resolve(path)
        e = self.manifest.get(real)
        if e is not None and e.kind == FILE:
            return e
        if e is not None and e.kind == DIR or any(p != real for p in self.manifest.under(real)):
            raise NotFound(f"{self.ref}: {path!r} is a folder, not a file")
        if real != path:
            raise NotFound(f"{self.ref}: {path!r} is a link to {real!r}, which it does not have")
        raise NotFound(f"{self.ref} has no file {path!r}")

    def open(self, path: str) -> Any:
        """A binary file object reading one file straight from the store."""
        return self._contents.open(self.resolve(path), self.namespace)

    def read_table(self, name: str) -> pyarrow.Table:
        """A table from the Parquet/CSV parts under folder `name` (see cairn.table)."""
        from .engine.table import read_table

        return read_table(self, name, self._contents)

    def new_draft(self) -> Artifact:
        """A new Artifact starting from this version's files: change some, log it.

        Until the draft is logged (or for six hours), this version is held: `retain`
        keeps it and `gc` keeps its bytes."""
        manifest = self.manifest
        art = Artifact._draft(self, manifest)
        art._lease = self._records.hold(self.id, namespace=self.namespace, digest=self.digest)
        return art

    # -- mutable fields ------------------------------------------------------------------

    def save(self) -> ArtifactVersion:
        """Write description, metadata and aliases back to the catalog.

        `latest` is cairn's: adding it to a version that does not hold it is refused,
        and leaving it out of `aliases` does not take it away.
        """
        for a in dict.fromkeys(self.aliases):
            if a not in self._saved_aliases:
                check_user_alias(a)
        wanted = [check_alias(a) for a in dict.fromkeys(self.aliases) if a != LATEST]
        self._records.save(
            self.id,
            project=self.project,
            ref=self.ref,
            description=self.description,
            metadata=self.metadata,
            aliases=wanted,
            before=self._saved_aliases,
        )
        saved = self._records.get(self.id)[1]
        # two lists: an edit of `aliases` must not change what was saved
        self.aliases, self._saved_aliases = list(saved), list(saved)
        return self

    def delete(self, *, delete_aliases: bool = False, force: bool = False) -> None:
        """Mark the version deleted; its bytes go at the next `gc`. Refuses while it
        has aliases (other than `latest`) unless `delete_aliases=True`, and while it
        holds a protected alias (`production` by default, docs/RETENTION.md) unless
        `force=True` (which implies `delete_aliases`)."""
        own = [a for a in self._saved_aliases if a != LATEST]
        if own and not (delete_aliases or force):
            raise Conflict(
                f"{self.ref} has aliases {', '.join(own)}; remove them or pass "
                "delete_aliases=True (--delete-aliases)"
            )
        self._records.delete(self.id, project=self.project, ref=self.ref, force=force)
        self.state = "DELETED"
        self.aliases, self._saved_aliases = [], []

    # -- lineage -----------------------------------------------------------------------

    def logged_by(self) -> Run | None:
        """The run that logged (or finished) this version, if one did."""
        return self._runs.get(self._run_id) if self._run_id else None

    def used_by(self) -> list[Run]:
        """Runs that used this version, oldest first."""
        return self._runs.users_of(self.id)

    def contributors(self) -> list[Run]:
        """Runs that upserted parts into this (distributed) version."""
        return self._runs.contributors_of(self.id)


def _refuse_case_collisions(ref: str, folder: str, paths: Manifest) -> None:
    """On a file system that takes 'A.txt' and 'a.txt' for one name, a version holding both
    cannot be checked out: one would be written over the other. Refused, nothing written."""
    pairs = case_collisions(paths)
    if pairs:
        shown = ", ".join(f"{a!r} and {b!r}" for a, b in pairs)
        raise Conflict(
            f"cannot check out {ref} into {folder}: its file system does not tell apart names "
            f"that differ only by case, and the version has such names ({shown}); nothing "
            "was changed. Check it out on a case-sensitive file system, or read the files "
            "one by one with get_path() or cairn://"
        )
