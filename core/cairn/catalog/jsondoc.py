"""Typed access to a key inside a JSON column, the same on SQLite and PostgreSQL.

The catalog's JSON documents (a version's metadata, a run's config and summary) are
searched in SQL: SQLite's JSON1 functions (`json_type`, `json_extract`) and PostgreSQL's
jsonb operators (`->`, `jsonb_typeof`, `@>`). Both give the same answers because every
comparison also checks the JSON type of the value it reads: a number compares with
numbers only, a string with strings (in code-point order: `COLLATE "C"` on PostgreSQL,
SQLite's binary order). On PostgreSQL the type is checked first and a cast is only
reached, inside a CASE, once it is known, so a string never makes a numeric comparison
fail; SQLite compares any two values without error, so it tests the value first and reads
the type only for the rows that pass (each read parses the JSON text again). Keys reach
the database as bound parameters, never as SQL text.

Every predicate returned here is TRUE or FALSE, never NULL, so `NOT` negates it exactly.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Integer,
    Numeric,
    String,
    Text,
    case,
    cast,
    false,
    func,
    literal,
)
from sqlalchemy.dialects.postgresql import JSONB

from ..foundation.errors import CairnError

Kind = Literal["number", "string", "boolean"]
Keys = tuple[str, ...]


class Documents(ABC):
    """Predicates and sort keys on `column` at a key path, for one SQL dialect."""

    @abstractmethod
    def present(self, column: Any, keys: Keys) -> ColumnElement[bool]:
        """The key exists and does not hold JSON null."""

    @abstractmethod
    def equals(
        self, column: Any, keys: Keys, value: str | int | float | bool
    ) -> ColumnElement[bool]:
        """The value at the key is `value`, of the same JSON type (1 equals 1.0)."""

    @abstractmethod
    def compare(
        self, column: Any, keys: Keys, op: str, value: str | int | float
    ) -> ColumnElement[bool]:
        """`<`, `<=`, `>`, `>=` against a number (numbers only) or a string (strings only)."""

    def like(self, column: Any, keys: Keys, matcher: Any) -> ColumnElement[bool]:
        """A string at the key that `matcher(text_expression)` accepts."""
        return case(
            (self._is(column, keys, "string"), matcher(self._text(column, keys))), else_=false()
        )

    @abstractmethod
    def sort_keys(self, column: Any, keys: Keys, descending: bool) -> list[Any]:
        """ORDER BY terms: numbers (numerically), then strings, then booleans, then
        objects and arrays; null and missing last in either direction."""

    @abstractmethod
    def each_key(self, column: Any, keys: Keys) -> tuple[Any, Any, Any]:
        """The keys of the object at `keys` (none if it is not an object): a table-valued
        function to join each row to (ON true), its `key` column, and whether the key
        holds an object (to descend into)."""

    # dialect primitives ----------------------------------------------------------------

    @abstractmethod
    def _kind(self, column: Any, keys: Keys) -> ColumnElement[str]:
        """'number', 'string', 'boolean', 'null', 'object', 'array', or NULL if missing."""

    def _is(self, column: Any, keys: Keys, kind: Kind) -> ColumnElement[bool]:
        return self._kind(column, keys) == kind

    @abstractmethod
    def _number(self, column: Any, keys: Keys, *, exact: bool = True) -> Any:
        """The number at the key (exact: numeric, else double precision), for rows
        whose value is a number."""

    @abstractmethod
    def _text(self, column: Any, keys: Keys) -> Any:
        """The string at the key, for rows whose value is a string."""

    @abstractmethod
    def _flag(self, column: Any, keys: Keys) -> Any:
        """0 or 1 for a boolean at the key."""

    def _sortable(self, text: Any) -> Any:
        return text


_SQLITE_KINDS = {
    "integer": "number",
    "real": "number",
    "text": "string",
    "true": "boolean",
    "false": "boolean",
}
_SQLITE_RANKS = {"integer": 0, "real": 0, "text": 1, "true": 2, "false": 2, "object": 3, "array": 3}
_RANKS = {"number": 0, "string": 1, "boolean": 2, "object": 3, "array": 3}


class SqliteDocuments(Documents):
    """SQLite JSON1: `json_type` says the type, `json_extract` gives the SQL value."""

    def _path(self, keys: Keys) -> Any:
        # quoted labels: a key may hold '.', '[' or spaces (never '"': the query refuses it)
        return literal("$" + "".join(f'."{k}"' for k in keys), String)

    def _type(self, column: Any, keys: Keys) -> Any:
        return func.json_type(column, self._path(keys))

    def _value(self, column: Any, keys: Keys) -> Any:
        return func.json_extract(column, self._path(keys))

    def _kind(self, column: Any, keys: Keys) -> ColumnElement[str]:
        return case(_SQLITE_KINDS, value=self._type(column, keys), else_=self._type(column, keys))

    def sort_keys(self, column: Any, keys: Keys, descending: bool) -> list[Any]:
        # JSON is parsed twice per row: once for the type, once for the value, which
        # SQLite orders by its own type within a rank (numbers, text, 0/1 for booleans)
        rank = case(_SQLITE_RANKS, value=self._type(column, keys), else_=4)
        value = self._value(column, keys)
        return [rank.asc(), value.desc() if descending else value.asc()]

    def _is(self, column: Any, keys: Keys, kind: Kind) -> ColumnElement[bool]:
        names = {"number": ("integer", "real"), "string": ("text",), "boolean": ("true", "false")}
        return self._type(column, keys).in_(names[kind])

    def present(self, column: Any, keys: Keys) -> ColumnElement[bool]:
        return func.coalesce(self._type(column, keys), "null") != "null"

    def equals(
        self, column: Any, keys: Keys, value: str | int | float | bool
    ) -> ColumnElement[bool]:
        if isinstance(value, bool):
            return func.coalesce(self._type(column, keys), "") == ("true" if value else "false")
        kind: Kind = "string" if isinstance(value, str) else "number"
        return self._checked(column, keys, kind, self._value(column, keys) == value)

    def compare(
        self, column: Any, keys: Keys, op: str, value: str | int | float
    ) -> ColumnElement[bool]:
        kind: Kind = "string" if isinstance(value, str) else "number"
        test = self._value(column, keys).op(op, return_type=Boolean)(value)
        return self._checked(column, keys, kind, test)

    def like(self, column: Any, keys: Keys, matcher: Any) -> ColumnElement[bool]:
        return self._checked(column, keys, "string", matcher(self._text(column, keys)))

    def _checked(self, column: Any, keys: Keys, kind: Kind, test: Any) -> ColumnElement[bool]:
        """`test` on the SQL value, then the JSON type: JSON is parsed a second time only
        for rows whose value passes (a missing key fails it: NULL goes to ELSE). SQLite
        orders text above every number and reads true as 1, hence the type check."""
        return case((test, self._is(column, keys, kind)), else_=false())

    def _number(self, column: Any, keys: Keys, *, exact: bool = True) -> Any:
        return self._value(column, keys)

    def _text(self, column: Any, keys: Keys) -> Any:
        return self._value(column, keys)

    def _flag(self, column: Any, keys: Keys) -> Any:
        return self._value(column, keys)  # 0 or 1

    def each_key(self, column: Any, keys: Keys) -> tuple[Any, Any, Any]:
        # json_each of a scalar yields the scalar itself, with a NULL key: not a key
        each = func.json_each(column, self._path(keys)).table_valued("key", "type")
        return each, each.c.key, each.c.type == "object"


class PostgresDocuments(Documents):
    """PostgreSQL jsonb: `->` with text keys (never an array index), `jsonb_typeof`,
    containment `@>` for equality (served by the columns' GIN indexes)."""

    def _at(self, column: Any, keys: Keys) -> Any:
        expr = column
        for k in keys:
            expr = expr.op("->", return_type=JSONB)(cast(literal(k, Text), Text))
        return expr

    def _kind(self, column: Any, keys: Keys) -> ColumnElement[str]:
        return func.jsonb_typeof(self._at(column, keys))

    def present(self, column: Any, keys: Keys) -> ColumnElement[bool]:
        return func.coalesce(self._kind(column, keys), "null") != "null"

    def equals(
        self, column: Any, keys: Keys, value: str | int | float | bool
    ) -> ColumnElement[bool]:
        # {"a": {"b": v}} contains exactly the documents whose a.b is v (same JSON type;
        # numbers by value, 1 = 1.0); the column is never NULL, so neither is this
        doc: Any = value
        for k in reversed(keys):
            doc = {k: doc}
        return column.op("@>", return_type=Boolean)(cast(literal(json.dumps(doc), Text), JSONB))

    def compare(
        self, column: Any, keys: Keys, op: str, value: str | int | float
    ) -> ColumnElement[bool]:
        if isinstance(value, str):
            kind: Kind = "string"
            left = self._sortable(self._text(column, keys))
        else:
            kind = "number"
            # float literals compare as double precision, as SQLite compares REALs
            left = self._number(column, keys, exact=not isinstance(value, float))
        test = left.op(op, return_type=Boolean)(value)
        return case((self._is(column, keys, kind), test), else_=false())

    def _number(self, column: Any, keys: Keys, *, exact: bool = True) -> Any:
        return cast(self._at(column, keys), Numeric if exact else Float)

    def _text(self, column: Any, keys: Keys) -> Any:
        *parents, last = keys
        return self._at(column, tuple(parents)).op("->>", return_type=Text)(
            cast(literal(last, Text), Text)
        )

    def _flag(self, column: Any, keys: Keys) -> Any:
        return cast(cast(self._at(column, keys), Boolean), Integer)

    def _sortable(self, text: Any) -> Any:
        return text.collate("C")  # code-point order, as SQLite compares

    def sort_keys(self, column: Any, keys: Keys, descending: bool) -> list[Any]:
        kind = self._kind(column, keys)
        rank = case(_RANKS, value=kind, else_=4)
        number = case({"number": self._number(column, keys)}, value=kind)
        text = case({"string": self._sortable(self._text(column, keys))}, value=kind)
        flag = case({"boolean": self._flag(column, keys)}, value=kind)
        terms = [number, text, flag]
        return [rank.asc(), *(t.desc() if descending else t.asc() for t in terms)]

    def each_key(self, column: Any, keys: Keys) -> tuple[Any, Any, Any]:
        target = self._at(column, keys)
        # jsonb_each fails on anything but an object: give it an empty one instead
        obj = case(
            (func.jsonb_typeof(target) == "object", target),
            else_=cast(literal("{}", Text), JSONB),
        )
        each = func.jsonb_each(obj).table_valued("key", "value").lateral()
        return each, each.c.key, func.jsonb_typeof(each.c.value) == "object"


def documents(dialect: str) -> Documents:
    return PostgresDocuments() if dialect == "postgresql" else SqliteDocuments()


# -- what the documents hold ------------------------------------------------------------

#: how non-finite floats are stored: JSON has no such numbers (PostgreSQL refuses them)
NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def dumps(value: Any) -> str:
    """The catalog's JSON encoder (every JSON column). A NaN or infinite float becomes the
    string 'NaN', 'Infinity' or '-Infinity'; a numpy-style scalar its Python value; a date
    or datetime its ISO text."""
    try:
        return json.dumps(value, allow_nan=False, default=_plain)
    except ValueError:  # a non-finite float somewhere: rare, so walk only then
        return json.dumps(_finite(value), allow_nan=False, default=_plain)


def document(value: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """`value` as the JSON object the catalog stores and gives back (see `dumps`), or a
    CairnError naming `what` if it cannot be one."""
    if not isinstance(value, Mapping):
        raise CairnError(f"{what} must be a dict of names to values, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise CairnError(f"{what} keys must be strings, not {type(key).__name__} ({key!r})")
    try:
        out: dict[str, Any] = json.loads(dumps(dict(value)))
    except TypeError as exc:
        raise CairnError(
            f"{what} must hold JSON values (numbers, strings, lists, dicts): {exc}"
        ) from None
    return out


def _plain(obj: Any) -> Any:
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):  # numpy scalars (-> a Python number) and arrays (-> lists)
        return tolist()
    raise TypeError(f"{type(obj).__name__} {obj!r} is not a JSON value")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return NON_FINITE.get(value, value)
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return _finite(_plain(value))
