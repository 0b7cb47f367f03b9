"""The errors cairn raises. Every message says what went wrong and what to do about it."""

from __future__ import annotations


class CairnError(Exception):
    """Base class of every error cairn raises on purpose."""


class NotFound(CairnError):
    """A project, collection, version, alias, file or run does not exist."""


class InvalidName(CairnError, ValueError):
    """A name, alias, ref or manifest path is malformed or would escape its root."""


class Conflict(CairnError):
    """Two writers disagree (same path, different content) or a state forbids the change."""


class Finalized(CairnError):
    """A distributed version was already committed; it takes no more parts."""


class IntegrityError(CairnError):
    """Bytes read back do not match their recorded digest, or an object is missing."""


class ReferenceChanged(IntegrityError):
    """A referenced object changed at its source since it was logged."""


class PermissionDenied(CairnError):
    """The caller lacks the right the operation needs on a project."""


class InvalidQuery(CairnError, ValueError):
    """A search query or sort order is malformed or names an unknown field.

    `position` is the 1-based character position the problem starts at (0 when it is
    about the query as a whole), `reason` says what is wrong there.
    """

    def __init__(self, reason: str, *, query: str = "", position: int = 0, what: str = "query"):
        self.reason, self.query, self.position, self.what = reason, query, position, what
        where = f" at position {position}" if position else ""
        shown = query if len(query) <= 80 else query[:77] + "..."
        context = f" (in {what} {shown!r})" if query and position else ""
        super().__init__(f"invalid {what}{where}: {reason}{context}")


class RepositoryMismatch(CairnError):
    """The store and the catalog belong to different repositories (or one of them to
    none): writes and deletions are refused, so a wrong catalog never changes a store."""


class InvalidPolicy(CairnError, ValueError):
    """A retention policy is malformed: a negative count, an unknown duration unit, a bad
    alias name (docs/RETENTION.md)."""
