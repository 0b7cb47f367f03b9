"""Source instances by URL scheme: the registry of every kind of reference source.

Kept apart from `base`, which the source kinds import: the registry imports them all.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ...foundation.errors import CairnError
from .base import Source, protocol_of
from .gcs import GCSSource
from .http import HTTPSource
from .local import LocalSource
from .s3 import S3Source

_KINDS: tuple[type[Source], ...] = (S3Source, GCSSource, LocalSource, HTTPSource)


class Sources:
    """Source instances by URL scheme, each built once with its storage options."""

    def __init__(self, options: Mapping[str, Mapping[str, Any]] | None = None):
        self._options = {k.lower(): dict(v) for k, v in (options or {}).items()}
        self._made: dict[type[Source], Source] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, store_url: str, storage_options: Mapping[str, Any] | None) -> Sources:
        """Sources where references on the store's own scheme use the store's options."""
        if not storage_options:
            return cls()
        kind = _registry().get(protocol_of(store_url))
        schemes = kind.protocols if kind else (protocol_of(store_url),)
        return cls({p: storage_options for p in schemes})

    def for_uri(self, uri: str) -> Source:
        protocol = protocol_of(uri)
        kind = _registry().get(protocol)
        if kind is None:
            known = ", ".join(sorted(f"{p}://" for p in _registry()))
            raise CairnError(f"cannot reference {uri!r}: supported schemes are {known}")
        with self._lock:
            if kind not in self._made:
                options: dict[str, Any] = {}
                for p in kind.protocols:
                    options.update(self._options.get(p, {}))
                self._made[kind] = kind(options)
            return self._made[kind]


def _registry() -> dict[str, type[Source]]:
    return {p: cls for cls in _KINDS for p in cls.protocols}
