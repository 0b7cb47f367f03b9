"""Events: what changed in a repository, announced to listeners after the catalog commit.

Names are the same in the core, the adapters and every plugin (docs/EVENTS.md):

    cairn.version.committed   a new version became visible
    cairn.alias.moved         an alias now points at a version it did not point at before
    cairn.alias.removed       an alias was taken off a version and points nowhere now
    cairn.metadata.changed    a version's description or metadata was edited
    cairn.version.deleted     a committed version was deleted

Listeners subscribe with `Repository.on(event, callback)`; installed plugins (entry point
group `cairn.events`) are called once with each repository that is about to announce a
change, and subscribe the same way. A listener runs in the writer's thread after the
change is committed: its exception is logged and never undoes or fails the write.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any

from ..foundation.errors import CairnError

log = logging.getLogger("cairn.events")

VERSION_COMMITTED = "cairn.version.committed"
ALIAS_MOVED = "cairn.alias.moved"
ALIAS_REMOVED = "cairn.alias.removed"
METADATA_CHANGED = "cairn.metadata.changed"
VERSION_DELETED = "cairn.version.deleted"
#: every event, in the order one write announces them
NAMES = (VERSION_COMMITTED, VERSION_DELETED, METADATA_CHANGED, ALIAS_REMOVED, ALIAS_MOVED)
#: subscribe to every event
ANY = "*"
#: the entry point group plugins register in
PLUGIN_GROUP = "cairn.events"
#: unset: load every installed plugin; "none" (or empty): none; "a,b": those named
PLUGINS_VARIABLE = "CAIRN_EVENT_PLUGINS"


@dataclass(frozen=True)
class Event:
    """One change of one version, as listeners receive it (`to_dict()` for JSON)."""

    #: one of NAMES
    event: str
    #: the version the event is about: `project/name:vN`
    ref: str
    project: str
    name: str
    type: str
    #: 'v3'
    version: str
    #: the catalog's id of the version (stable, unlike an alias)
    version_id: int
    digest: str | None
    #: the version's aliases after the change, sorted
    aliases: tuple[str, ...]
    #: when the change was committed (UTC)
    occurred_at: datetime
    #: the cairn run that made the change (the logging run for a commit), if one did
    run: str | None = None
    #: alias events: the alias that moved or was removed
    alias: str | None = None
    #: alias.moved: the version the alias pointed at before (`project/name:vN`), if any
    previous: str | None = None
    #: metadata.changed: which fields changed ('description', 'metadata')
    changed: tuple[str, ...] = ()
    #: the version's metadata after the change (read-only)
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def collection(self) -> str:
        """`project/name`: the collection (an asset key's path)."""
        return f"{self.project}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON data (`occurred_at` in ISO 8601)."""
        return {
            "event": self.event,
            "ref": self.ref,
            "project": self.project,
            "name": self.name,
            "type": self.type,
            "version": self.version,
            "version_id": self.version_id,
            "digest": self.digest,
            "aliases": list(self.aliases),
            "occurred_at": self.occurred_at.isoformat(),
            "run": self.run,
            "alias": self.alias,
            "previous": self.previous,
            "changed": list(self.changed),
            "metadata": dict(self.metadata),
        }


Callback = Callable[[Event], object]


@dataclass(frozen=True, eq=False)
class Subscription:
    """What `Repository.on` returns: call it (or `close()`) to unsubscribe; idempotent."""

    event: str
    callback: Callback
    _listeners: Listeners = field(repr=False)

    def __call__(self) -> None:
        self._listeners.remove(self)

    def close(self) -> None:
        self()


class Listeners:
    """The callbacks of one repository, and the plugins that add theirs.

    Plugins are loaded on the first change the repository announces (a read-only use
    never imports them); `owner` is what each plugin is called with.
    """

    def __init__(self, owner: Any, *, plugins: bool = True):
        self._owner = owner
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self._plugins_due = plugins
        self._loading = threading.Lock()

    def on(self, event: str, callback: Callback) -> Subscription:
        if event != ANY and event not in NAMES:
            raise CairnError(
                f"unknown event {event!r}: use one of {', '.join(NAMES)} (or {ANY!r} for all)"
            )
        if not callable(callback):
            raise CairnError(f"the callback for {event} is not callable: {callback!r}")
        sub = Subscription(event, callback, self)
        with self._lock:
            self._subscriptions.append(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s is not sub]

    def active(self) -> bool:
        """Whether anyone listens (loading the plugins first, once): a write that nobody
        listens to builds no events."""
        if self._plugins_due:
            with self._loading:  # once, and no writer goes on before they subscribed
                if self._plugins_due:
                    load_plugins(self._owner)
                    self._plugins_due = False
        return bool(self._subscriptions)

    def emit(self, events: Iterable[Event]) -> None:
        """Call each event's listeners in subscription order. A failing listener is
        logged and the others still run: the change is committed whatever they do."""
        for ev in events:
            with self._lock:
                subs = [s for s in self._subscriptions if s.event in (ev.event, ANY)]
            for sub in subs:
                try:
                    sub.callback(ev)
                except Exception:
                    log.exception(
                        "a listener of %s (%r) failed on %s; the change stands",
                        ev.event,
                        sub.callback,
                        ev.ref,
                    )


def load_plugins(owner: Any) -> list[str]:
    """Call every enabled plugin of the `cairn.events` group with `owner` (a Repository);
    returns the names of those that subscribed. A plugin whose own dependencies are not
    installed is skipped quietly, a failing one with a warning."""
    loaded = []
    for ep in _enabled(os.environ.get(PLUGINS_VARIABLE)):
        try:
            setup = ep.load()
        except ModuleNotFoundError as e:
            log.debug("cairn event plugin %s skipped: %s is not installed", ep.name, e.name)
            continue
        except Exception:
            log.warning("cairn event plugin %s could not be loaded", ep.name, exc_info=True)
            continue
        try:
            setup(owner)
        except Exception:
            log.warning("cairn event plugin %s failed to subscribe", ep.name, exc_info=True)
            continue
        loaded.append(ep.name)
    return loaded


def _enabled(setting: str | None) -> list[EntryPoint]:
    if setting is None:
        return _installed()
    wanted = {n.strip() for n in setting.split(",")} - {"", "none"}
    if not wanted:  # `none`: the installed ones are not even looked up
        return []
    return [ep for ep in _installed() if ep.name in wanted]


@cache
def _installed() -> list[EntryPoint]:
    """The group's entry points, read once per process (scanning them costs milliseconds)."""
    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)
