"""Retention policies: which versions of a collection to keep, and which never to delete.

A policy is declared for a project or for one collection (docs/RETENTION.md). A version
is kept if ANY keep rule keeps it: among the newest `keep_last`, younger than
`keep_younger`, holding any alias (`keep_aliased=True`) or one of the listed ones,
used as an input by a run within `keep_used`. Whatever the rules say, a version is never
deleted while it holds a protected alias (`production` unless a policy says otherwise),
while it is its collection's newest (`latest`), or while a writer or a running run has
it in use. A collection's policy replaces its project's keep rules; its protected
aliases are its own list if it gives one, else the project's, else `production`.

This module is pure: `decide` is a function of the versions' facts and the clock, so the
rules are tested as a table and `cairn.retain` applies them to the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .durations import format_duration, parse_duration
from .errors import InvalidName, InvalidPolicy
from .names import LATEST, check_alias

#: aliases no command deletes a version of, unless a policy names others
DEFAULT_PROTECTED: tuple[str, ...] = ("production",)


@dataclass(frozen=True)
class RetentionPolicy:
    """What `cairn retain` keeps in a project or collection (None: the rule is off).

    `keep_younger` and `keep_used` take a `timedelta` or text such as `'30d'`, `'12h'`,
    `'2w'`; `keep_aliased` is True for any alias or a list of alias names; `protect`
    replaces the protected aliases (None: inherited, `()`: none). `project` and `name`
    say where the policy is declared (`name` None: the whole project).
    """

    keep_last: int | None = None
    keep_younger: timedelta | None = None
    keep_aliased: bool | tuple[str, ...] = False
    keep_used: timedelta | None = None
    protect: tuple[str, ...] | None = None
    project: str | None = field(default=None, compare=False)
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        last = self.keep_last
        if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 0):
            raise InvalidPolicy(
                f"invalid --keep-last {last!r}: give the number of newest versions to keep, "
                "0 or more"
            )
        for key in ("keep_younger", "keep_used"):
            value = getattr(self, key)
            if value is not None:
                flag = "--" + key.replace("_", "-")
                object.__setattr__(self, key, parse_duration(value, what=flag))
        aliased = self.keep_aliased
        if aliased is None:
            aliased = False
        if not isinstance(aliased, bool):
            names = _aliases([aliased] if isinstance(aliased, str) else aliased, "--keep-alias")
            aliased = names or False
        object.__setattr__(self, "keep_aliased", aliased)
        if self.protect is not None:
            names = [self.protect] if isinstance(self.protect, str) else self.protect
            object.__setattr__(self, "protect", _aliases(names, "--protect"))

    @property
    def keeps(self) -> bool:
        """Whether any keep rule is set: a policy without one (protection only) lets
        `retain` delete nothing."""
        return (
            self.keep_last is not None
            or self.keep_younger is not None
            or bool(self.keep_aliased)
            or self.keep_used is not None
        )

    @property
    def scope(self) -> str:
        """`project` or `project/name`: where the policy is declared."""
        return f"{self.project}/{self.name}" if self.name else str(self.project)

    def protected(self, *, inherited: Sequence[str] | None = None) -> tuple[str, ...]:
        """The aliases this policy protects: its own, else `inherited`, else the default."""
        if self.protect is not None:
            return self.protect
        return tuple(inherited) if inherited is not None else DEFAULT_PROTECTED

    def rules(self) -> list[str]:
        """The keep rules in words, e.g. `['the last 10', 'younger than 30d']`."""
        out = []
        if self.keep_last is not None:
            out.append(f"the last {self.keep_last}")
        if self.keep_younger is not None:
            out.append(f"younger than {format_duration(self.keep_younger)}")
        if self.keep_aliased is True:
            out.append("any with an alias")
        elif self.keep_aliased:
            out.append("any with alias " + ", ".join(self.keep_aliased))
        if self.keep_used is not None:
            out.append(f"any used by a run in the last {format_duration(self.keep_used)}")
        return out

    def __str__(self) -> str:
        keep = (
            "keep " + "; ".join(self.rules())
            if self.keeps
            else "no keep rule (retain deletes nothing)"
        )
        protect = "inherited" if self.protect is None else ", ".join(self.protect) or "none"
        return f"{keep}; protect: {protect}"

    def to_json(self) -> dict[str, object]:
        """The policy as `cairn retention show --json` prints it (durations as text)."""
        return {
            "scope": self.scope,
            "keep_last": self.keep_last,
            "keep_younger": format_duration(self.keep_younger) if self.keep_younger else None,
            "keep_aliased": self.keep_aliased
            if isinstance(self.keep_aliased, bool)
            else list(self.keep_aliased),
            "keep_used": format_duration(self.keep_used) if self.keep_used is not None else None,
            "protect": list(self.protect) if self.protect is not None else None,
        }

    def at(self, project: str, name: str | None) -> RetentionPolicy:
        return replace(self, project=project, name=name)


def _aliases(names: Iterable[str], flag: str) -> tuple[str, ...]:
    out = []
    for name in names:
        try:
            out.append(check_alias(name))
        except InvalidName as exc:
            raise InvalidPolicy(f"{flag}: {exc}") from None
    return tuple(dict.fromkeys(out))


def effective(
    project: RetentionPolicy | None, collection: RetentionPolicy | None
) -> tuple[RetentionPolicy | None, tuple[str, ...]]:
    """(the policy whose keep rules apply, the protected aliases) for a collection: its
    own policy replaces the project's; protected aliases fall back one level at a time."""
    inherited = project.protected() if project is not None else None
    if collection is not None:
        return collection, collection.protected(inherited=inherited)
    return project, inherited if inherited is not None else DEFAULT_PROTECTED


@dataclass(frozen=True)
class Candidate:
    """What `decide` needs to know about one committed version."""

    id: int
    index: int
    created_at: datetime
    aliases: frozenset[str] = frozenset()
    #: when a run last recorded using it as an input, if ever
    last_used: datetime | None = None
    #: a writer drafts from or stages it, or a running run uses it, right now
    in_use: bool = False


def decide(
    policy: RetentionPolicy,
    versions: Sequence[Candidate],
    *,
    protected: Iterable[str],
    now: datetime,
) -> list[Candidate]:
    """The versions `policy` lets go, oldest first. Never the newest, one holding a
    protected alias or one in use; else a version goes when no keep rule keeps it."""
    if not policy.keeps or not versions:
        return []
    guarded = set(protected)
    newest_first = sorted(versions, key=lambda v: v.index, reverse=True)
    doomed = []
    for rank, v in enumerate(newest_first):
        if rank == 0 or v.in_use or v.aliases & guarded or _kept(policy, rank, v, now):
            continue
        doomed.append(v)
    return sorted(doomed, key=lambda v: v.index)


def _kept(policy: RetentionPolicy, rank: int, v: Candidate, now: datetime) -> bool:
    if policy.keep_last is not None and rank < policy.keep_last:
        return True
    if policy.keep_younger is not None and now - v.created_at < policy.keep_younger:
        return True
    own = v.aliases - {LATEST}
    if policy.keep_aliased is True and own:
        return True
    if isinstance(policy.keep_aliased, tuple) and own & set(policy.keep_aliased):
        return True
    used = v.last_used
    return policy.keep_used is not None and used is not None and now - used < policy.keep_used


__all__ = ["DEFAULT_PROTECTED", "Candidate", "RetentionPolicy", "decide", "effective"]
