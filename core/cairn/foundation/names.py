"""Validation of names, aliases, refs and manifest paths (DESIGN invariant 10)."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidName

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^v(0|[1-9][0-9]*)$")
LATEST = "latest"


def check_name(value: str, *, kind: str = "name") -> str:
    """Return `value` if it is a valid project, collection, type or alias name."""
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise InvalidName(
            f"invalid {kind} {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_alias(value: str) -> str:
    """Aliases are names that cannot be mistaken for a version number."""
    check_name(value, kind="alias")
    if _VERSION.match(value):
        raise InvalidName(f"invalid alias {value!r}: names like v3 are version numbers")
    return value


def check_user_alias(value: str) -> str:
    """An alias a user sets or removes: any alias but `latest`, which is cairn's own."""
    if value == LATEST:
        raise InvalidName(
            "'latest' is cairn's own alias: it always names the newest committed version "
            "and moves by itself, so it cannot be set or removed; use another alias "
            "(e.g. production)"
        )
    return check_alias(value)


def check_path(value: str) -> str:
    """Return a normalised logical path inside an artifact, or raise InvalidName.

    Paths use '/' separators, are relative, and never contain '..', '.', empty
    segments, backslashes or NUL: a path must not be able to escape a download root
    or a store prefix.
    """
    if not isinstance(value, str) or not value:
        raise InvalidName("invalid path '': a file in an artifact needs a name")
    if _plain_path(value):
        return value
    bad = None
    if not _utf8(value):
        raise InvalidName(
            f"invalid path '{printable(value)}': it is not valid UTF-8 (a name written in "
            "another encoding); cairn stores paths as UTF-8: rename it"
        )
    if "\x00" in value:
        bad = "contains NUL"
    elif "\\" in value:
        bad = "contains a backslash; use '/'"
    elif value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        bad = "is absolute; paths are relative to the artifact root"
    else:
        parts = value.rstrip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            bad = "has an empty, '.' or '..' segment"
        elif any(len(p.encode()) > 255 for p in parts):
            bad = "has a segment longer than 255 bytes"
    if bad:
        raise InvalidName(f"invalid path {value!r}: it {bad}")
    return value.rstrip("/")


def check_link_target(path: str, target: str) -> str:
    """Return `target` if a link at `path` pointing there stays inside the version.

    The target is relative to the link's folder, '/'-separated, with '..' segments only
    at its start and no more of them than the link has folders above it; no '.', empty
    segment, backslash or NUL. With '..' only in front, the target resolves the same way
    by names and on a disk (no '..' ever follows a name that could be a link), so a link
    that stays inside by this rule stays inside a checkout too (DESIGN invariant 10).
    """
    bad = None
    if not isinstance(target, str) or not target:
        bad = "is empty"
    elif "\x00" in target or "\\" in target:
        bad = "contains NUL or a backslash"
    elif target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        bad = "is absolute; link targets are relative to the link's folder"
    else:
        parts = target.split("/")
        ups = 0
        while ups < len(parts) and parts[ups] == "..":
            ups += 1
        rest = parts[ups:]
        if any(p in ("", ".", "..") for p in rest):
            bad = "has an empty or '.' segment, or '..' after a name"
        elif any(len(p.encode()) > 255 for p in rest):
            bad = "has a segment longer than 255 bytes"
        elif ups > path.count("/"):
            bad = "points outside the version"
    if bad:
        raise InvalidName(f"invalid link {path!r} -> {target!r}: its target {bad}")
    return target


def _plain_path(value: str) -> bool:
    """A quick yes for the common path that is certainly valid (no '.' segment start, no
    empty segment, no NUL or backslash, not absolute, no drive, short); else check_path
    looks closer."""
    return (
        len(value) <= 255
        and value.isprintable()
        and value[0] not in "/."
        and value[-1] != "/"
        and value[1:2] != ":"
        and "\\" not in value
        and "//" not in value
        and "/." not in value
        and len(value.encode()) <= 255
    )


def _utf8(value: str) -> bool:
    """Whether `value` encodes to UTF-8: a file name whose bytes are not UTF-8 reaches
    Python as lone surrogates (PEP 383), which do not."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def printable(value: str) -> str:
    """`value` for an error message: the bytes of a name that is not UTF-8 as \\xNN."""
    try:
        raw = os.fsencode(value)
    except UnicodeEncodeError:  # surrogates that are not escaped bytes
        return value.encode("utf-8", "backslashreplace").decode("ascii")
    return raw.decode("utf-8", "backslashreplace")


def case_collisions(paths: Iterable[str], *, limit: int = 5) -> list[tuple[str, str]]:
    """Pairs of paths that differ only by case (or by Unicode normalisation), at most
    `limit`: on a case-insensitive file system (macOS and Windows by default) each pair
    is one file or folder, so a checkout there would write one over the other. The
    folders above a path count too ('A/x' and 'a/y' put both files in one folder)."""
    seen: dict[str, str] = {}
    found: dict[tuple[str, str], None] = {}
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            first = seen.setdefault(unicodedata.normalize("NFC", sub).casefold(), sub)
            if first != sub:
                found[(first, sub)] = None
                if len(found) >= limit:
                    return list(found)
                break
    return list(found)


def join_path(prefix: str | None, name: str) -> str:
    return check_path(f"{prefix.rstrip('/')}/{name}" if prefix else name)


@dataclass(frozen=True)
class Ref:
    """A parsed `project/name:alias`, `project/name:v3` or `name` reference."""

    project: str
    name: str
    selector: str = LATEST
    #: set for `project/name@<distributed id>`, which names a PENDING version
    distributed_id: str | None = None

    @property
    def index(self) -> int | None:
        """The version number when the selector is `vN`, else None."""
        m = _VERSION.match(self.selector)
        return int(self.selector[1:]) if m else None

    def __str__(self) -> str:
        if self.distributed_id is not None:
            return f"{self.project}/{self.name}@{self.distributed_id}"
        return f"{self.project}/{self.name}:{self.selector}"

    @classmethod
    def parse(cls, text: str, *, default_project: str | None = None) -> Ref:
        if not isinstance(text, str) or not text:
            raise InvalidName("invalid ref '': expected project/name[:alias|:vN]")
        if "@" in text:
            # project/name@<distributed id>: ids (Airflow run ids...) may contain ':'
            body, _, did = text.partition("@")
            base = cls.parse(body, default_project=default_project)
            if not did or "\x00" in did or len(did) > 256:
                raise InvalidName(f"invalid ref {text!r}: expected project/name@distributed-id")
            return cls(base.project, base.name, LATEST, did)
        body, _, selector = text.partition(":")
        selector = selector or LATEST
        project, slash, name = body.rpartition("/")
        if not slash:
            if not default_project:
                raise InvalidName(
                    f"invalid ref {text!r}: expected project/name[:alias|:vN] "
                    "(or set a default project)"
                )
            project = default_project
        if "/" in project:
            raise InvalidName(f"invalid ref {text!r}: expected project/name[:alias|:vN]")
        check_name(project, kind="project")
        check_name(name, kind="artifact name")
        if not _VERSION.match(selector):
            check_name(selector, kind="alias")
        return cls(project, name, selector)
