"""A store's `config.json`: its format, its chunking parameters and its repository id.

Format 1 (stores made before repository ids) has no `id`; format 2 is format 1 plus
`id`, the UUID of the repository the store belongs to, which its catalog records too
(docs/FORMAT.md "Repository identity"). An older cairn refuses format 2, so it cannot
write to or collect a store whose catalog it would not check.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from ..foundation.chunking import ChunkingParams
from ..foundation.errors import CairnError
from ..foundation.layout import CONFIG_KEY
from ..storage import Store

#: the format of a store with a repository id; FORMAT_NO_ID stores are adopted (stamped)
FORMAT = 2
FORMAT_NO_ID = 1


@dataclass(frozen=True)
class StoreConfig:
    chunking: ChunkingParams = ChunkingParams()
    #: the repository id; None in a store made before ids (format 1)
    id: str | None = None

    def with_id(self, repo_id: str) -> StoreConfig:
        return replace(self, id=repo_id)

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {"chunking": self.chunking.to_json()}
        if self.id is None:
            doc["format"] = FORMAT_NO_ID
        else:
            doc["format"], doc["id"] = FORMAT, self.id
        return json.dumps(doc, sort_keys=True, indent=2).encode()


def new_repository_id() -> str:
    return str(uuid.uuid4())


def read_config(store: Store) -> StoreConfig | None:
    """The store's config, or None when it has none (a new, empty store)."""
    try:
        raw = store.get(CONFIG_KEY)
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        fmt = doc.get("format")
    except (ValueError, AttributeError) as exc:
        raise CairnError(f"store {store.url}: {CONFIG_KEY} is not a JSON object") from exc
    if fmt not in (FORMAT_NO_ID, FORMAT):
        raise CairnError(
            f"store {store.url} has format {fmt!r}; this cairn reads {FORMAT_NO_ID} and "
            f"{FORMAT}: upgrade cairn"
        )
    repo_id = doc.get("id")
    if fmt == FORMAT and not _is_uuid(repo_id):
        raise CairnError(f"store {store.url}: {CONFIG_KEY} has format 2 but no valid id")
    return StoreConfig(ChunkingParams(**doc["chunking"]), repo_id if fmt == FORMAT else None)


def write_config(store: Store, config: StoreConfig) -> None:
    """Write (or stamp) config.json and make it durable."""
    store.put(CONFIG_KEY, config.to_bytes())
    store.sync()


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


__all__ = ["FORMAT", "StoreConfig", "new_repository_id", "read_config", "write_config"]
