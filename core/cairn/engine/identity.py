"""Repository identity: a store and its catalog belong together, or nothing is written.

A repository id (a UUID) is created with the store, in its `config.json`, and recorded
in the catalog. Before the first write or deletion through a repository handle, the two
are compared; a store of another repository, or a store holding data that an empty
catalog knows nothing of, refuses every write and deletion with one line saying which
repository the store belongs to and what to do. Reads stay possible: every byte read is
checked against its digest anyway.

The rules (docs/FORMAT.md "Repository identity"), with c the catalog's id and s the
store's:

| store | catalog | outcome |
|---|---|---|
| id s | c = s | writable |
| id s | c != s, or no c | refused |
| no id (format 1) | no c; legacy, or the store is empty | adopt: bind an id, stamp it |
| no id | no c, not legacy, store holds data | refused |
| no id | c, binding pending | stamp c (finish an interrupted adoption) |
| no id | c, bound | refused |
| none (no config.json) | no c, not legacy | create: bind a new id, write the store's config |
| none | no c, legacy, the store holds data | adopt (a store made before config.json) |
| none | no c, legacy, the store is empty | refused (the catalog's versions are elsewhere) |
| none | c, binding pending | write the store's config with c (another process binding) |
| none | c, bound | refused |

Binding order makes concurrent first writers of one catalog agree: the catalog is bound
first (the first `UPDATE ... WHERE id IS NULL` wins, later ones read its id), then the
store gets that id, then the binding is settled. A process that sees a settled binding
therefore also sees the id in the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..catalog import Catalog
from ..catalog import identity as catalog_identity
from ..catalog.identity import CatalogIdentity
from ..foundation.errors import RepositoryMismatch
from ..foundation.layout import MANIFESTS, OBJECTS, PACKS, PROJECTS
from ..storage import Store
from .storeconfig import StoreConfig, new_repository_id, read_config, write_config

Action = Literal["ok", "settle", "bind", "stamp", "refuse"]
_RECOVER = "or run `cairn recover` to rebuild a catalog from the store"


@dataclass(frozen=True)
class Decision:
    """What to do about a (catalog, store) pair: `refuse` carries the problem."""

    action: Action
    problem: str = ""


def decide(
    catalog: CatalogIdentity, config: StoreConfig | None, store_empty: Callable[[], bool]
) -> Decision:
    """The rule of the module docstring's table (`store_empty` is asked only when needed)."""
    c = catalog.id
    at = f" (bound to {catalog.store_url})" if catalog.store_url else ""
    if config is not None and config.id is not None:
        s = config.id
        if c == s:
            return Decision("settle" if catalog.pending else "ok")
        if c is not None:
            return Decision(
                "refuse",
                f"belongs to repository {s}, but this catalog belongs to repository {c}{at}: "
                f"point CAIRN_CATALOG at the catalog of repository {s}, or CAIRN_STORE at "
                f"the store of repository {c}",
            )
        return Decision(
            "refuse",
            f"belongs to repository {s}, and this catalog is not its catalog (it belongs "
            f"to no repository yet): point CAIRN_CATALOG at the catalog of repository {s}, "
            + _RECOVER,
        )
    if config is not None:  # a store made before repository ids
        if c is None:
            if catalog.legacy or store_empty():
                return Decision("bind")
            return Decision(
                "refuse",
                "holds data of a repository made before repository ids, and this catalog "
                "holds none of it: point CAIRN_CATALOG at the catalog that store was used "
                "with (its first write gives both an id), " + _RECOVER,
            )
        if catalog.pending:
            return Decision("stamp")
        return Decision(
            "refuse",
            f"has no repository id, but this catalog belongs to repository {c}{at}: point "
            f"CAIRN_STORE at the store of repository {c}",
        )
    if c is None:
        # a legacy catalog adopts a store without config.json only if it holds data
        # (bytes of the catalog's versions); an empty one is somewhere else
        if not catalog.legacy or not store_empty():
            return Decision("bind")
        return Decision(
            "refuse",
            "is empty, but this catalog holds versions made before repository ids: point "
            "CAIRN_STORE at the store it was used with",
        )
    if catalog.pending:
        return Decision("stamp")
    return Decision(
        "refuse",
        f"is empty (it has no config.json), but this catalog belongs to repository {c}{at}: "
        f"point CAIRN_STORE at the store of repository {c}",
    )


class Identity:
    """One repository handle's check that its store and catalog belong together.

    The check runs before the handle's first write and is remembered once it passes;
    a refusal is checked afresh next time (the user may have fixed the pair).
    """

    def __init__(self, catalog: Catalog, store: Store):
        self.catalog = catalog
        self.store = store
        self.config = read_config(store)
        self._checked: str | None = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str | None:
        """The repository id once checked (or as the store says), else None."""
        return self._checked or (self.config.id if self.config else None)

    def require(self, action: str = "write to this repository") -> str:
        """The repository id, binding store and catalog first if the rules say so;
        RepositoryMismatch (nothing changed) when they belong to different repositories."""
        if self._checked is not None:
            return self._checked
        with self._lock:
            if self._checked is None:
                self._checked = self._resolve(action)
        return self._checked

    def _resolve(self, action: str) -> str:
        # the catalog first, then the store: a binder writes them in that order
        with self.catalog.read() as conn:
            bound = catalog_identity.load(conn)
        if self.config is None or self.config.id is None:
            self.config = read_config(self.store)  # another process may have stamped it
        decision = decide(bound, self.config, self._store_empty)
        if decision.action == "refuse" and bound.id is None:
            # a process of this catalog may have bound it between our two reads
            with self.catalog.read() as conn:
                bound = catalog_identity.load(conn)
            decision = decide(bound, self.config, self._store_empty)
        if decision.action == "refuse":
            raise RepositoryMismatch(
                f"cannot {action}: store {self.store.url} {decision.problem} "
                f"(catalog: {self.catalog.display_url()})"
            )
        if decision.action == "ok":
            assert bound.id is not None
            return bound.id
        if decision.action == "bind":
            with self.catalog.write(check=False) as conn:
                bound = catalog_identity.bind(conn, new_repository_id(), self.store.url)
        assert bound.id is not None
        if decision.action != "settle":
            self._stamp(bound.id)
        with self.catalog.write(check=False) as conn:
            catalog_identity.settle(conn, bound.id)
        return bound.id

    def _stamp(self, repo_id: str) -> None:
        """Give the store `repo_id`, unless another repository's id got there first."""
        current = read_config(self.store)
        if current is not None and current.id is not None and current.id != repo_id:
            raise RepositoryMismatch(
                f"store {self.store.url} was just given repository id {current.id} by "
                f"another catalog; this catalog ({self.catalog.display_url()}) is bound to "
                f"{repo_id}: point CAIRN_CATALOG at the catalog of repository {current.id}"
            )
        self.config = (current or self.config or StoreConfig()).with_id(repo_id)
        write_config(self.store, self.config)

    def _store_empty(self) -> bool:
        """No object, manifest or pack in any namespace (config.json aside)."""
        return not any(next(iter(self.store.list(p)), None) for p in _DATA)


_DATA = (OBJECTS, MANIFESTS, PACKS, PROJECTS)

__all__ = ["Decision", "Identity", "decide"]
