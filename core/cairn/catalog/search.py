"""Searching versions and runs: a parsed query (cairn.query) compiled to SQLAlchemy Core.

The catalog filters, sorts, pages and counts; Python only receives the page it asked
for. Values and keys reach the database as bound parameters only. On PostgreSQL,
row-level security already hides what the caller may not read, so a search over every
project returns only readable rows. docs/SEARCH.md is the user's description of the
semantics implemented here:

- a comparison is TRUE or FALSE, never unknown, so `NOT` is plain negation;
- a field that is missing or null matches no comparison but `= null` (and `!=` needs
  the field present: `metadata.x != 'a'` skips versions without x);
- `alias` is a set: `alias = 'production'` means "has that alias", `alias != 'x'`
  means "does not have it";
- versions marked DELETED are left out unless the query names `state`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from ..errors import InvalidQuery
from ..query import And, Compare, Const, Expr, Field, In, Like, Not, Or, Order, parse, parse_order
from ..query import fields as fields_of
from .jsondoc import Documents, documents
from .records import DELETED, version_query
from .schema import aliases, collections, projects, runs, versions

ColumnKind = Literal["string", "number", "datetime", "version", "state"]
#: how deep `keys` descends into nested objects, and how many keys it reports at most
MAX_KEY_DEPTH, MAX_KEYS = 8, 1000


@dataclass(frozen=True)
class Column:
    """A plain column a query may name."""

    expr: Any
    kind: ColumnKind
    nullable: bool = False


@dataclass(frozen=True)
class Target:
    """What a search runs over: its fields, JSON documents and base query."""

    noun: str
    columns: Mapping[str, Column]
    documents: Mapping[str, Any]  # field name -> JSON column (metadata.<key> ...)
    base: Callable[[], Select[Any]]
    project: Any  # the project name column
    newest: tuple[Any, ...]  # tie-breakers: newest first
    has_alias: bool = False

    def field_names(self) -> list[str]:
        names = [*self.columns, *(["alias"] if self.has_alias else [])]
        return sorted(names) + [f"{d}.<key>" for d in self.documents]


def _runs_query() -> Select[Any]:
    return select(runs, projects.c.name.label("project")).join(
        projects, projects.c.id == runs.c.project_id
    )


VERSIONS = Target(
    noun="version",
    columns={
        "project": Column(projects.c.name, "string"),
        "name": Column(collections.c.name, "string"),
        "type": Column(collections.c.type, "string"),
        "version": Column(versions.c.idx, "version", nullable=True),
        "state": Column(versions.c.state, "state"),
        "digest": Column(versions.c.digest, "string", nullable=True),
        "description": Column(versions.c.description, "string", nullable=True),
        "size": Column(versions.c.size, "number"),
        "files": Column(versions.c.file_count, "number"),
        "created_at": Column(versions.c.created_at, "datetime"),
        "committed_at": Column(versions.c.committed_at, "datetime", nullable=True),
    },
    documents={"metadata": versions.c.metadata},
    base=version_query,
    project=projects.c.name,
    newest=(versions.c.created_at.desc(), versions.c.id.desc()),
    has_alias=True,
)
RUNS = Target(
    noun="run",
    columns={
        "project": Column(projects.c.name, "string"),
        "id": Column(runs.c.id, "string"),
        "name": Column(runs.c.name, "string", nullable=True),
        "job_type": Column(runs.c.job_type, "string", nullable=True),
        "group": Column(runs.c.group_name, "string", nullable=True),
        "kind": Column(runs.c.kind, "string"),
        "state": Column(runs.c.state, "string"),
        "created_at": Column(runs.c.created_at, "datetime"),
        "finished_at": Column(runs.c.finished_at, "datetime", nullable=True),
    },
    documents={
        "config": runs.c.config,
        "summary": runs.c.summary,
        "attributes": runs.c.attributes,
    },
    base=_runs_query,
    project=projects.c.name,
    newest=(runs.c.created_at.desc(), runs.c.id.desc()),
)


# -- running searches -------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """A query compiled for one target and dialect: its filter and its order."""

    target: Target
    where: ColumnElement[bool]
    order: list[Any]

    @classmethod
    def compile(
        cls,
        target: Target,
        dialect: str,
        query: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        order_by: str | None = None,
    ) -> Search:
        expr = parse(query, params)
        compiler = _Compiler(target, dialect, query)
        where = compiler.where(expr) if expr is not None else true()
        if target is VERSIONS and not any(f.head == "state" for f in fields_of(expr)):
            where = and_(where, versions.c.state != DELETED)
        sorter = _Compiler(target, dialect, order_by or "", what="order_by")
        order = sorter.order(parse_order(order_by) if order_by else None)
        return cls(target, where, order)

    def select(self, project: str | None, name: str | None = None) -> Select[Any]:
        """The matching rows, in `project` (else any) and of collection `name` (else any)."""
        q = self.target.base().where(self.where)
        if project is not None:
            q = q.where(self.target.project == project)
        if name is not None:
            q = q.where(self.target.columns["name"].expr == name)
        return q


def find(
    conn: Connection,
    search: Search,
    *,
    project: str | None,
    name: str | None = None,
    limit: int | None,
    offset: int,
) -> list[Row]:
    """The matching rows, sorted, `limit` of them from `offset`."""
    q = search.select(project, name).order_by(*search.order)
    if limit is not None:
        q = q.limit(limit)
    if offset:
        q = q.offset(offset)
    return list(conn.execute(q))


def count(conn: Connection, search: Search, *, project: str | None, name: str | None = None) -> int:
    """How many rows match (what a pager shows as the total)."""
    q = search.select(project, name).with_only_columns(func.count(), maintain_column_froms=False)
    return int(conn.execute(q).scalar_one())


def keys(
    conn: Connection,
    search: Search,
    document: str,
    *,
    project: str | None,
    name: str | None = None,
) -> list[tuple[str, ...]]:
    """Every key path holding a non-object value in `document` (e.g. "summary") of the
    matching rows, sorted: the columns a table of the results needs. Nested objects are
    followed MAX_KEY_DEPTH levels deep; at most MAX_KEYS paths are returned."""
    column = search.target.documents[document]
    docs = documents(conn.dialect.name)
    found: set[tuple[str, ...]] = set()
    frontier: list[tuple[str, ...]] = [()]
    for _ in range(MAX_KEY_DEPTH):
        deeper: set[tuple[str, ...]] = set()
        for prefix in frontier:
            each, key, nested = docs.each_key(column, prefix)
            q = (
                search.select(project, name)
                .join(each, true())
                .where(key.is_not(None))
                .with_only_columns(key, nested, maintain_column_froms=False)
                .distinct()
            )
            for found_key, is_object in conn.execute(q):
                path = (*prefix, str(found_key))
                (deeper if is_object else found).add(path)
                if len(found) >= MAX_KEYS:
                    return sorted(found)[:MAX_KEYS]
        if not deeper:
            break
        frontier = sorted(deeper)
    return sorted(found)


# -- the compiler -----------------------------------------------------------------------


class _Compiler:
    def __init__(self, target: Target, dialect: str, text: str, *, what: str = "query"):
        self.target = target
        self.postgres = dialect == "postgresql"
        self.docs: Documents = documents(dialect)
        self.text = text
        self.what = what  # "query" or "order_by": what an error names

    def error(self, pos: int, reason: str) -> InvalidQuery:
        return InvalidQuery(reason, query=self.text, position=pos, what=self.what)

    # filter ------------------------------------------------------------------------------

    def where(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, And):
            return and_(*(self.where(e) for e in expr.items))
        if isinstance(expr, Or):
            return or_(*(self.where(e) for e in expr.items))
        if isinstance(expr, Not):
            return not_(self.where(expr.item))
        if isinstance(expr, Compare):
            return self.compare(expr.field, expr.op, expr.value)
        if isinstance(expr, In):
            hit = or_(*(self.compare(expr.field, "=", v) for v in expr.values))
            return self.negated(expr.field, hit) if expr.negated else hit
        if isinstance(expr, Like):
            hit = self.like(expr)
            return self.negated(expr.field, hit) if expr.negated else hit
        raise TypeError(f"not a query expression: {expr!r}")

    def negated(self, field: Field, hit: ColumnElement[bool]) -> ColumnElement[bool]:
        """NOT IN / NOT LIKE: the field is present and does not match (alias: lacks it)."""
        if field.head == "alias" and self.target.has_alias:
            return not_(hit)
        return and_(self.compare(field, "!=", Const(None, field.pos)), not_(hit))

    def compare(self, field: Field, op: str, const: Const) -> ColumnElement[bool]:
        kind, target = self.resolve(field)
        if kind == "alias":
            return self.alias(field, op, const)
        if kind == "document":
            return self.document(field, target, op, const)
        return self.column(field, target, op, const)

    def resolve(self, field: Field) -> tuple[str, Any]:
        head, t = field.head, self.target
        if head in t.documents:
            if not field.keys:
                raise self.error(
                    field.pos, f"{head} is a JSON object: name a key, e.g. {head}.accuracy"
                )
            return "document", t.documents[head]
        if head in t.columns or (head == "alias" and t.has_alias):
            if field.keys:
                raise self.error(field.pos, f"{head} has no keys: write {head} alone")
            return ("alias", None) if head == "alias" else ("column", t.columns[head])
        raise self.error(
            field.pos,
            f"unknown field {str(field)!r}: {t.noun}s have {', '.join(t.field_names())}",
        )

    def column(self, field: Field, col: Column, op: str, const: Const) -> ColumnElement[bool]:
        value = self.coerce(field, col, const)
        expr = col.expr
        if value is None:
            if op not in ("=", "!="):
                raise self.error(const.pos, "null compares only with = and != (or IS NULL)")
            if not col.nullable:
                return false() if op == "=" else true()
            return expr.is_(None) if op == "=" else expr.is_not(None)
        if op == "=":
            test = expr == value
        elif op == "!=":
            test = expr != value
        else:
            left = self.sortable(expr) if col.kind in ("string", "state") else expr
            test = left.op(op, return_type=Boolean)(value)
        return and_(expr.is_not(None), test) if col.nullable else test

    def coerce(self, field: Field, col: Column, const: Const) -> Any:
        """`const` as a value of `col`'s type, or an error naming both."""
        v = const.value
        if v is None:
            return None
        if col.kind in ("string", "state") and isinstance(v, str):
            return v.upper() if col.kind == "state" else v
        if col.kind == "number" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        if col.kind == "version":
            if isinstance(v, int) and not isinstance(v, bool):
                return v
            if isinstance(v, str) and v[:1] == "v" and v[1:].isdigit():
                return int(v[1:])
            raise self.error(const.pos, f"{field} is a version: write 3 or 'v3'")
        if col.kind == "datetime":
            return self.moment(field, const)
        wanted = {"string": "a string", "state": "a string", "number": "a number"}[col.kind]
        raise self.error(const.pos, f"{field} is {wanted}, not {_describe(v)}")

    def moment(self, field: Field, const: Const) -> datetime:
        v = const.value
        if isinstance(v, datetime):
            moment = v
        elif isinstance(v, str):
            try:
                moment = datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise self.error(
                    const.pos,
                    f"{field} takes an ISO date or time, e.g. '2024-05-01' or "
                    f"'2024-05-01T12:00:00Z', not {_describe(v)}",
                ) from None
        else:
            raise self.error(const.pos, f"{field} takes an ISO date string, not {_describe(v)}")
        # the catalog holds UTC; a time without an offset is UTC
        if moment.tzinfo is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)

    def document(self, field: Field, column: Any, op: str, const: Const) -> ColumnElement[bool]:
        v, keys = const.value, field.keys
        if isinstance(v, datetime):
            v = v.astimezone(timezone.utc).isoformat() if v.tzinfo else v.isoformat()
        if v is None:
            if op not in ("=", "!="):
                raise self.error(const.pos, "null compares only with = and != (or IS NULL)")
            present = self.docs.present(column, keys)
            return not_(present) if op == "=" else present
        if op == "=":
            return self.docs.equals(column, keys, v)
        if op == "!=":
            return and_(self.docs.present(column, keys), not_(self.docs.equals(column, keys, v)))
        if isinstance(v, bool):
            raise self.error(const.pos, "true and false compare only with = and !=")
        return self.docs.compare(column, keys, op, v)

    def alias(self, field: Field, op: str, const: Const) -> ColumnElement[bool]:
        v = const.value
        mine = _mine()
        if v is None and op in ("=", "!="):
            has_any = exists().where(mine)
            return not_(has_any) if op == "=" else has_any
        if op not in ("=", "!=") or not isinstance(v, str):
            raise self.error(
                const.pos if op in ("=", "!=") else field.pos,
                "alias compares with = and != against a name, e.g. alias = 'production'",
            )
        has = exists().where(mine, aliases.c.name == v)
        return has if op == "=" else not_(has)

    def like(self, expr: Like) -> ColumnElement[bool]:
        pattern = str(expr.pattern.value)
        parts = _like_parts(pattern, self.error, expr.pattern.pos)

        def matches(text: Any) -> ColumnElement[bool]:
            return self.matcher(text, parts, expr.ignore_case)

        kind, target = self.resolve(expr.field)
        if kind == "alias":
            return exists().where(_mine(), matches(aliases.c.name))
        if kind == "document":
            return self.docs.like(target, expr.field.keys, matches)
        if target.kind not in ("string", "state"):
            raise self.error(expr.field.pos, f"LIKE needs a text field; {expr.field} is not one")
        test = matches(target.expr)
        return and_(target.expr.is_not(None), test) if target.nullable else test

    def matcher(
        self, text: Any, parts: list[str | Wildcard], ignore_case: bool
    ) -> ColumnElement[bool]:
        """LIKE, case-sensitive on both catalogs (SQLite's LIKE is not: it gets GLOB);
        ILIKE folds ASCII letters only, the same way on both."""
        if ignore_case:
            parts = [p if isinstance(p, Wildcard) else _ascii_lower(p) for p in parts]
            text = (
                func.translate(text, _UPPER, _UPPER.lower()) if self.postgres else func.lower(text)
            )
        if self.postgres:
            like = "".join(p.like if isinstance(p, Wildcard) else _escape(p, "\\%_") for p in parts)
            return text.op("LIKE", return_type=Boolean)(literal(like))
        glob = "".join(p.glob if isinstance(p, Wildcard) else _glob_escape(p) for p in parts)
        return text.op("GLOB", return_type=Boolean)(literal(glob))

    # order -------------------------------------------------------------------------------

    def order(self, order: Order | None) -> list[Any]:
        newest = list(self.target.newest)
        if order is None:
            return newest
        field = order.field
        kind, target = self.resolve(field)
        if kind == "alias":
            raise self.error(
                field.pos, "versions cannot be sorted by alias (a version has several)"
            )
        if kind == "document":
            return [*self.docs.sort_keys(target, field.keys, order.descending), *newest]
        expr = self.sortable(target.expr) if target.kind in ("string", "state") else target.expr
        term = expr.desc() if order.descending else expr.asc()
        return [term.nulls_last() if target.nullable else term, *newest]

    def sortable(self, expr: Any) -> Any:
        return expr.collate("C") if self.postgres else expr


def _mine() -> ColumnElement[bool]:
    """An alias row of the version at hand (its collection first: the primary key's prefix)."""
    return and_(
        aliases.c.collection_id == versions.c.collection_id,
        aliases.c.version_id == versions.c.id,
    )


# -- LIKE patterns ----------------------------------------------------------------------


@dataclass(frozen=True)
class Wildcard:
    like: str
    glob: str


ANY, ONE = Wildcard("%", "*"), Wildcard("_", "?")
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _like_parts(
    pattern: str, error: Callable[[int, str], InvalidQuery], pos: int
) -> list[str | Wildcard]:
    """'a\\%b%' -> ['a%b', ANY]: literal runs and wildcards."""
    parts: list[str | Wildcard] = []
    run: list[str] = []
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            nxt = next(chars, None)
            if nxt is None:
                raise error(pos, "a LIKE pattern cannot end with a backslash (write \\\\)")
            run.append(nxt)
        elif c in "%_":
            if run:
                parts.append("".join(run))
                run = []
            parts.append(ANY if c == "%" else ONE)
        else:
            run.append(c)
    if run:
        parts.append("".join(run))
    return parts


def _escape(text: str, special: str) -> str:
    return "".join("\\" + c if c in special else c for c in text)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _ascii_lower(text: str) -> str:
    return text.translate(str.maketrans(_UPPER, _UPPER.lower()))


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return f"the number {value}" if isinstance(value, (int, float)) else repr(value)


__all__ = ["RUNS", "VERSIONS", "Search", "Target", "count", "find", "keys"]
