"""The catalog: versions, aliases, runs and leases in SQL (SQLite or PostgreSQL)."""

from .engine import Catalog, sqlite_url

__all__ = ["Catalog", "sqlite_url"]
