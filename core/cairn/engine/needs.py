"""What the engine's operations need of a repository, declared where they are used.

gc, verify, repair, retain and export act on a repository's catalog, store, objects and
cache; drafts and tables on a version. They take any object that has these parts, typed by
the protocols below, instead of the `Repository` facade or an `ArtifactVersion`: the engine
sits below the public API and never imports it, not even for an annotation. `Repository`
and `ArtifactVersion` have every part, so they are passed as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..foundation.manifest import Entry, Manifest
    from ..storage import Store
    from .cache import Cache
    from .events import Listeners
    from .identity import Identity
    from .objects import Objects
    from .references.sources import Sources


class Stored(Protocol):
    """A catalog and the store it describes, with the store's object reader/writer."""

    @property
    def catalog(self) -> Catalog: ...

    @property
    def store(self) -> Store: ...

    @property
    def objects(self) -> Objects: ...

    @property
    def identity(self) -> Identity: ...

    @property
    def default_project(self) -> str: ...


class Maintained(Stored, Protocol):
    """A repository as gc, verify, repair and retain see it: its storage, this machine's
    cache, the reference sources it may read, and its listeners."""

    @property
    def cache(self) -> Cache: ...

    @property
    def reference_sources(self) -> Sources: ...

    @property
    def listeners(self) -> Listeners: ...


class Checked(Protocol):
    """A committed version as verify and export read it."""

    @property
    def ref(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def manifest(self) -> Manifest: ...


class Listed(Checked, Protocol):
    """A version whose files can be listed and looked up (partitioned tables)."""

    def files(self) -> list[Entry]: ...

    def resolve(self, path: str) -> Entry: ...


class DraftParent(Checked, Protocol):
    """The version a draft starts from: what the draft copies of it, and where its bytes
    are (an `ArtifactVersion`)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def description(self) -> str | None: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    @property
    def digest(self) -> str | None: ...
