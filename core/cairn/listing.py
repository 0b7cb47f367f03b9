"""What `cairn ls --where` and `cairn runs` print: search results as tables and JSON.

A table of versions has a column per metadata key, a table of runs one per summary key
(config keys too when the query or the sort names them): the keys a query or sort names
come first, then the others in order, up to `MAX_KEY_COLUMNS`. `--json` prints every
field of every result instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .console import human_size, utc, when
from .foundation.errors import InvalidQuery
from .foundation.query import fields, format_path, parse, parse_order

if TYPE_CHECKING:
    from .run import Run
    from .version import ArtifactVersion

#: key columns a table shows at most (--json shows everything)
MAX_KEY_COLUMNS = 8


Path = tuple[str, ...]


def named_keys(document: str, query: str, order_by: str | None) -> list[Path]:
    """Key paths in `document` (e.g. "summary") the sort and the query name, in order."""
    named = []
    try:
        if order_by:
            named.append(parse_order(order_by).field)
        named += fields(parse(query)) if query else []
    except InvalidQuery:  # the search itself reports it
        return []
    keys = [f.keys for f in named if f.head == document and f.keys]
    return list(dict.fromkeys(keys))


def key_columns(docs: Iterable[dict[str, Any]], first: Sequence[Path]) -> tuple[list[Path], int]:
    """The key paths to show (those in `first` that occur, then the others sorted) and how
    many more there are than MAX_KEY_COLUMNS."""
    seen: set[Path] = set()
    for doc in docs:
        seen.update(leaf_paths(doc))
    ordered = [k for k in first if k in seen] + sorted(seen - set(first))
    return ordered[:MAX_KEY_COLUMNS], max(0, len(ordered) - MAX_KEY_COLUMNS)


def leaf_paths(doc: dict[str, Any], prefix: Path = ()) -> list[Path]:
    """('a', 'b') for {"a": {"b": 1}}: paths to every value that is not an object."""
    paths: list[Path] = []
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            paths += leaf_paths(value, (*prefix, key))
        else:
            paths.append((*prefix, key))
    return paths


def lookup(doc: dict[str, Any], path: Path) -> Any:
    """The value at a key path; MISSING if there is none."""
    value: Any = doc
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


class _Missing:
    def __repr__(self) -> str:
        return "-"


MISSING = _Missing()


def cell(value: Any) -> str:
    """A value for a table: numbers short, missing as '-', objects as compact JSON."""
    import json

    if value is MISSING:
        return "-"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


# -- versions ---------------------------------------------------------------------------


def version_table(
    versions: Sequence[ArtifactVersion], *, first_keys: Sequence[Path]
) -> tuple[list[str], list[list[str]], int]:
    """Headers, rows, and how many metadata keys did not fit."""
    keys, hidden = key_columns((v.metadata for v in versions), first_keys)
    headers = ["ref", "type", "state", "size", "aliases", "created", *map(format_path, keys)]
    rows = [
        [
            v.ref,
            v.type,
            v.state,
            human_size(v.size),
            ", ".join(v.aliases),
            when(v.created_at),
            *(cell(lookup(v.metadata, k)) for k in keys),
        ]
        for v in versions
    ]
    return headers, rows, hidden


def version_doc(v: ArtifactVersion) -> dict[str, Any]:
    """A search result as JSON (`cairn show --json` adds files and lineage)."""
    return {
        "ref": v.ref,
        "project": v.project,
        "name": v.name,
        "type": v.type,
        "version": v.version,
        "index": v.index,
        "state": v.state,
        "digest": v.digest,
        "size": v.size,
        "file_count": v.file_count,
        "aliases": v.aliases,
        "description": v.description,
        "metadata": v.metadata,
        "created_at": utc(v.created_at).isoformat(),
        "committed_at": utc(v.committed_at).isoformat() if v.committed_at else None,
    }


# -- runs -------------------------------------------------------------------------------


def run_table(
    runs: Sequence[Run], *, first_keys: Sequence[Path], config_keys: Sequence[Path]
) -> tuple[list[str], list[list[str]], int]:
    """Headers, rows, and how many summary keys did not fit. `config_keys` (those the
    query names) get columns `config.<key>` before the summary's."""
    keys, hidden = key_columns((r.summary for r in runs), first_keys)
    projects = {r.project for r in runs}
    headers = [
        "run",
        "name",
        *(["project"] if len(projects) > 1 else []),
        "group",
        "job type",
        "state",
        "created",
        *(format_path(("config", *k)) for k in config_keys),
        *map(format_path, keys),
    ]
    rows = []
    for r in runs:
        config, summary = r.config, r.summary
        rows.append(
            [
                short_id(r.id),
                r.name or "-",
                *([r.project] if len(projects) > 1 else []),
                r.group or "-",
                r.job_type or "-",
                r.state,
                when(r.created_at),
                *(cell(lookup(config, k)) for k in config_keys),
                *(cell(lookup(summary, k)) for k in keys),
            ]
        )
    return headers, rows, hidden


def short_id(run_id: str) -> str:
    """The end of a run id, which tells runs apart (ids start with their kind:
    `prefect-task-...`, `airflow-...`); `--json` has the whole id."""
    return run_id if len(run_id) <= 13 else "…" + run_id[-12:]


def run_doc(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "project": r.project,
        "name": r.name,
        "job_type": r.job_type,
        "group": r.group,
        "kind": r.kind,
        "state": r.state,
        "created_at": utc(r.created_at).isoformat(),
        "finished_at": utc(r.finished_at).isoformat() if r.finished_at else None,
        "config": r.config,
        "summary": r.summary,
        "attributes": r.attributes,
    }
