"""The store log: what the catalog holds, kept in the store so a lost catalog can be
rebuilt from the store alone (docs/FORMAT.md "Store log")."""

from .reader import CompactReport, Log, compact, read
from .state import State
from .writer import StoreLog

__all__ = ["CompactReport", "Log", "State", "StoreLog", "compact", "read"]
