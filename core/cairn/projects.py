"""Projects: the namespace (and, with PostgreSQL, the access boundary) of collections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

VISIBILITIES = ("private", "public", "open")


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    visibility: str
    created_at: datetime
