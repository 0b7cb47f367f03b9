"""What the store log says the catalog holds: items folded from records and snapshots.

The state is a map of items, each keyed by what it describes (docs/FORMAT.md "Store
log"): `project:<p>`, `collection:<p>/<c>`, `version:<p>/<c>:<n>`, `alias:<p>/<c>:<a>`,
`policy:<p>` or `policy:<p>/<c>`, `run:<id>` and `usage:<run>|<p>/<c>:<n>`. An item's
value is the whole row as the catalog held it after the change (never a delta), with
`_at`, the stamp of the record that set it. Folding is last-writer-wins by stamp, so the
order in which snapshots and records are merged does not change the result, and a record
applied twice is a no-op.

Versions are the one exception to plain last-writer-wins: two items claiming one version
number with different manifests mean that one writer logged a record and died before its
catalog commit, and a later writer took the number. The later commit keeps it (it is the
one the catalog committed); the earlier one, whose bytes are all in the store, moves to
the collection's next free number with the aliases its own record set, so nothing is lost.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...foundation.names import LATEST

Item = dict[str, Any]

#: the earliest stamp: what a genesis snapshot (the catalog before the log) carries
GENESIS = ""


def version_key(project: str, collection: str, index: int) -> str:
    return f"version:{project}/{collection}:{index}"


def collection_key(project: str, collection: str) -> str:
    return f"collection:{project}/{collection}"


def alias_key(project: str, collection: str, alias: str) -> str:
    return f"alias:{project}/{collection}:{alias}"


def usage_key(run: str, project: str, collection: str, index: int) -> str:
    return f"usage:{run}|{project}/{collection}:{index}"


@dataclass
class State:
    """Items by key; `merge` folds one more in."""

    items: dict[str, Item] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Mapping[str, Item]) -> State:
        state = cls()
        for key in sorted(items, key=lambda k: (items[k].get("_at") or "", k)):
            state.merge(key, items[key])
        return state

    def copy(self) -> State:
        return State(copy.deepcopy(self.items))

    def merge_state(self, other: State) -> None:
        for key in sorted(other.items, key=lambda k: (other.items[k].get("_at") or "", k)):
            self.merge(key, other.items[key])

    def apply(self, stamp: str, entries: Iterable[Mapping[str, Any]]) -> None:
        """Fold one record's entries (in their order), all stamped `stamp`."""
        moved: dict[str, str] = {}  # this record's version keys renumbered on arrival
        for entry in entries:
            key, value = entry["key"], dict(entry["value"])
            value["_at"] = stamp
            producer = value.pop("producer", None)
            if producer is not None:  # a version record carries its run as it was then
                self.merge(f"run:{producer['id']}", {**producer, "_at": stamp})
            if key.startswith("version:") and entry.get("kind") == "version.committed":
                value["_commit_at"] = stamp
            if key.startswith("alias:") and value.get("version") is not None:
                target = _target(key, value["version"])
                if target in moved:
                    value["version"] = _index_of(moved[target])
            landed = self.merge(key, value)
            if landed is not None and landed != key:
                moved[key] = landed

    def merge(self, key: str, value: Item) -> str | None:
        """Fold one item in; returns the key it landed under (None if an older one stands)."""
        old = self.items.get(key)
        if old is None:
            self.items[key] = value
            return key
        if key.startswith("version:"):
            return self._merge_version(key, old, value)
        if key.startswith("usage:"):
            return None  # an edge is made once; its first record stands
        if (value.get("_at") or "") >= (old.get("_at") or ""):
            self.items[key] = value
            return key
        return None

    def _merge_version(self, key: str, old: Item, new: Item) -> str | None:
        if old.get("digest") == new.get("digest"):
            newer = (new.get("_at") or "") >= (old.get("_at") or "")
            merged = {**old, **new} if newer else {**new, **old}
            commits = [v["_commit_at"] for v in (old, new) if v.get("_commit_at") is not None]
            if commits:
                merged["_commit_at"] = min(commits)
            self.items[key] = merged
            return key
        # one number, two manifests: the earlier commit was never committed (see above)
        if (new.get("_commit_at") or "") > (old.get("_commit_at") or ""):
            self.items[key] = new
            self._renumber(key, old)
            return key
        return self._renumber(key, new)

    def _renumber(self, key: str, item: Item) -> str:
        """Move an uncommitted version to its collection's next free number."""
        collection = key[len("version:") : key.rindex(":")]
        index = self.next_index(collection)
        landed = f"version:{collection}:{index}"
        self.items[landed] = {**item, "version": index}
        # the aliases its own record set follow it
        old_index = _index_of(key)
        for k, v in self.items.items():
            if (
                k.startswith(f"alias:{collection}:")
                and v.get("version") == old_index
                and v.get("_at") == item.get("_commit_at")
            ):
                v["version"] = index
        return landed

    def next_index(self, collection: str) -> int:
        prefix = f"version:{collection}:"
        numbers = [_index_of(k) for k in self.items if k.startswith(prefix)]
        return max(numbers, default=-1) + 1

    # -- reading the state as the catalog would hold it ---------------------------------------

    def rows(self) -> dict[str, Item]:
        """Items without stamps, with `latest` computed: what the catalog must hold."""
        out: dict[str, Item] = {}
        newest: dict[str, int] = {}
        for key, item in self.items.items():
            if key.startswith("alias:") and item.get("version") is None:
                continue  # removed
            if key.startswith("policy:") and item.get("removed"):
                continue
            out[key] = {k: v for k, v in item.items() if not k.startswith("_")}
            if key.startswith("version:") and item.get("state") == "COMMITTED":
                collection = key[len("version:") : key.rindex(":")]
                newest[collection] = max(newest.get(collection, -1), _index_of(key))
        for key in [k for k in out if k.startswith("alias:") and k.endswith(f":{LATEST}")]:
            del out[key]
        for collection, index in newest.items():
            out[f"alias:{collection}:{LATEST}"] = {"version": index}
        for key in [k for k in out if k.startswith("collection:")]:
            out[key]["next_index"] = self.next_index(key[len("collection:") :])
        for key in [k for k in out if k.startswith("alias:")]:
            # an alias of a deleted (or unknown) version does not exist
            target = out.get(_target(key, out[key]["version"]))
            if target is None or target.get("state") != "COMMITTED":
                del out[key]
        return out


def _index_of(key: str) -> int:
    return int(key[key.rindex(":") + 1 :])


def _target(alias_key: str, index: int) -> str:
    """The version key an alias item points at."""
    collection = alias_key[len("alias:") : alias_key.rindex(":")]
    return f"version:{collection}:{index}"
