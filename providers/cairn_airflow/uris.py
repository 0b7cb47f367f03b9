"""`cairn://project/name`: the asset URI of a collection, parsed, checked and normalised.

An Airflow asset stands for the collection, not one version of it: every committed version
is an *event* on the asset, whose `extra` names the version. So an asset URI has exactly a
project and a collection name, and nothing that pins a version (`:v3`, `:production`,
`@<distributed id>`), points inside one (`/path/in/artifact`) or asks a question
(`?query`, `#fragment`). The scheme is case-insensitive and written in lower case;
project and name are case-sensitive, as in cairn's refs; trailing slashes are dropped.

Airflow calls `normalize_asset_uri` (registered as the `cairn` scheme's handler in
`get_provider_info`) for every `Asset("cairn://...")`, so a malformed URI fails where the
DAG is parsed, with a message that says how to write it. Pure: no Airflow import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from cairn import InvalidName, check_name

SCHEME = "cairn"
_FORM = "write cairn://project/name"
_PIN = re.compile(r"[:@]")


@dataclass(frozen=True)
class CollectionURI:
    """A collection as an asset URI names it."""

    project: str
    name: str

    def __str__(self) -> str:
        return f"{SCHEME}://{self.project}/{self.name}"

    @property
    def collection(self) -> str:
        """`project/name`: the collection's ref without a version (its OpenLineage name)."""
        return f"{self.project}/{self.name}"


def parse_asset_uri(uri: str) -> CollectionURI:
    """The collection `uri` names; InvalidName (a ValueError) if it is not a valid
    `cairn://project/name`."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidName(f"invalid cairn asset URI {uri!r}: it is empty; {_FORM}")
    return _parse(urlsplit(uri.strip()), uri)


def normalize_asset_uri(parts: SplitResult) -> SplitResult:
    """The `cairn` scheme's URI handler for Airflow: the canonical form of `parts`
    (`cairn://project/name`), or InvalidName saying what is wrong with it."""
    # as written (geturl() would drop the '//' of a URI with no project)
    written = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    query = f"?{parts.query}" if parts.query else ""
    found = _parse(parts, written + query)
    return SplitResult(SCHEME, found.project, f"/{found.name}", "", "")


def asset_uri(project: str, name: str) -> str:
    """`cairn://project/name` (names checked)."""
    return str(_checked(project, name, f"{SCHEME}://{project}/{name}"))


def _parse(parts: SplitResult, uri: str) -> CollectionURI:
    def bad(why: str) -> InvalidName:
        return InvalidName(f"invalid cairn asset URI {uri!r}: {why}")

    if parts.scheme.lower() != SCHEME:
        raise bad(f"the scheme is {parts.scheme or 'missing'}, not cairn; {_FORM}")
    if parts.query or parts.fragment:
        raise bad(f"an asset URI has no query or fragment; {_FORM}")
    project = parts.netloc
    if "@" in project:
        raise bad("an asset URI has no user or password; the connection says where cairn is")
    path = parts.path.rstrip("/")
    if not project:
        raise bad(f"it has no project; {_FORM} (e.g. cairn://demo/events)")
    if ":" in project:
        raise bad(f"the project {project!r} has a ':' (a port or a version?); {_FORM}")
    segments = path.split("/")[1:] if path.startswith("/") else [path] if path else []
    if not segments or not segments[0]:
        raise bad(f"it has no collection name after the project; {_FORM}")
    name = segments[0]
    if _PIN.search(name):
        pin = name[_PIN.search(name).start() :]  # type: ignore[union-attr]
        raise bad(
            f"{pin!r} pins a version, but an asset is the whole collection (each version "
            f"is an event on it, named in the event's extra); {_FORM}"
        )
    if len(segments) > 1:
        raise bad(
            "an asset is a collection, not a path inside a version "
            f"({'/'.join(segments[1:])!r}); {_FORM}"
        )
    return _checked(project, name, uri)


def _checked(project: str, name: str, uri: str) -> CollectionURI:
    try:
        check_name(project, kind="project")
        check_name(name, kind="collection name")
    except InvalidName as e:
        raise InvalidName(f"invalid cairn asset URI {uri!r}: {e}") from None
    return CollectionURI(project, name)
