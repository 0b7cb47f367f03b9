"""Compiling a parsed query (cairn.query) for one searchable table and SQL dialect.

`Target` says what a query may name (columns, JSON documents, aliases); `Compiler` turns
the AST into SQLAlchemy Core expressions, every value and key a bound parameter:
comparisons on columns, typed comparisons inside JSON documents (catalog/jsondoc.py),
alias membership, LIKE patterns that are case-sensitive on both catalogs, and sort keys.
catalog/search.py defines the targets and runs the statements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)

from ..foundation.errors import InvalidQuery
from ..foundation.query import And, Compare, Const, Expr, Field, In, Like, Not, Or, Order
from .jsondoc import Documents, documents
from .schema import aliases, versions

ColumnKind = Literal["string", "number", "datetime", "version", "state"]


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


class Compiler:
    """A query or a sort order, compiled for `target` on `dialect`."""

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


__all__ = ["Column", "Compiler", "Target"]
