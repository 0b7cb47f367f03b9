"""The search language of `Repository.search_versions` / `search_runs` (docs/SEARCH.md).

    metadata.accuracy > 0.9 AND type = 'model' AND NOT alias = 'archived'
    group = 'sweep-1' AND (summary.val_loss < 0.2 OR config.lr IN (0.1, 0.01))

A tokenizer, an AST of frozen dataclasses and a recursive-descent parser; nothing here
knows SQL (catalog/search.py compiles the AST). Grammar, lowest precedence first:

    query      := [or] END
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | "(" or ")" | comparison
    comparison := field ( op value
                        | ["NOT"] "IN" "(" value ("," value)* ")"
                        | ["NOT"] ("LIKE" | "ILIKE") value
                        | "IS" ["NOT"] "NULL" )
    field      := name ("." (name | "quoted name"))*
    value      := 'string' | number | true | false | null | :parameter
    op         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="

Keywords are case-insensitive; field names and keys are not. Strings are single-quoted
('it''s' holds a quote); double quotes name a key with other characters
(`metadata."learning rate"`). `:name` takes a value from the `params` mapping, so values
computed by a program need no quoting. Every error is an `InvalidQuery` naming the
1-based position in the text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .errors import InvalidQuery

Value = str | int | float | bool | datetime | None
Op = Literal["=", "!=", "<", "<=", ">", ">="]
TokenKind = Literal["name", "quoted", "string", "number", "param", "symbol", "end"]

KEYWORDS = frozenset({"and", "or", "not", "in", "like", "ilike", "is", "null", "true", "false"})
_SYMBOLS = ("<=", ">=", "!=", "<>", "==", "=", "<", ">", "(", ")", ",", ".")
_OPS: dict[str, Op] = {
    "=": "=",
    "==": "=",
    "!=": "!=",
    "<>": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}
#: at most this many nested NOTs and parentheses (the parser recurses on them)
MAX_DEPTH = 100


# -- tokens -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str  # as written (a string's or quoted name's content, unescaped)
    pos: int  # 1-based position of its first character
    value: Value = None  # a number's or string's value

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "name" and self.text.lower() in words

    def is_symbol(self, *symbols: str) -> bool:
        return self.kind == "symbol" and self.text in symbols

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the query"
        if self.kind == "string":
            return f"string {_quote(str(self.value))}"
        if self.kind == "quoted":
            return f'"{self.text}"'
        return repr(self.text)


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an `end` token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "'":
            i = _string(text, i, tokens)
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise _error(text, i + 1, 'unterminated quoted name: a closing " is missing')
            name = text[i + 1 : end]
            if not name or any(ord(ch) < 32 for ch in name):
                raise _error(text, i + 1, "a quoted name needs printable characters")
            tokens.append(Token("quoted", name, i + 1))
            i = end + 1
        elif c.isdigit() or (c == "-" and i + 1 < n and (text[i + 1].isdigit())):
            i = _number(text, i, tokens)
        elif c == ":":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            if j == i + 1:
                raise _error(text, i + 1, "a parameter needs a name, e.g. :group")
            tokens.append(Token("param", text[i + 1 : j], i + 1))
            i = j
        elif c.isalpha() or c == "_":
            j = i + 1
            # '-' may continue a name (metadata.val-loss): the language has no arithmetic
            while j < n and (text[j].isalnum() or text[j] in "_-"):
                j += 1
            tokens.append(Token("name", text[i:j], i + 1))
            i = j
        else:
            symbol = next((s for s in _SYMBOLS if text.startswith(s, i)), None)
            if symbol is None:
                raise _error(text, i + 1, f"unexpected character {c!r}")
            tokens.append(Token("symbol", symbol, i + 1))
            i += len(symbol)
    tokens.append(Token("end", "", n + 1))
    return tokens


def _string(text: str, start: int, tokens: list[Token]) -> int:
    parts: list[str] = []
    i = start + 1
    while True:
        end = text.find("'", i)
        if end < 0:
            raise _error(text, start + 1, "unterminated string: a closing ' is missing")
        parts.append(text[i:end])
        if text.startswith("''", end):  # '' is one quote inside a string
            parts.append("'")
            i = end + 2
            continue
        value = "".join(parts)
        if "\x00" in value:
            raise _error(text, start + 1, "a string cannot hold a NUL character")
        tokens.append(Token("string", value, start + 1, value))
        return end + 1


def _number(text: str, start: int, tokens: list[Token]) -> int:
    i, n = start + 1, len(text)
    while i < n and (text[i].isalnum() or text[i] in ".+-_"):
        # 1e-5 and 2.5E+3 continue a number; so do letters, to reject 12abc as a whole
        if text[i] in "+-" and text[i - 1] not in "eE":
            break
        i += 1
    raw = text[start:i]
    try:
        value: int | float = int(raw) if raw.lstrip("-").isdigit() else float(raw)
    except ValueError:
        raise _error(text, start + 1, f"invalid number {raw!r}") from None
    if "_" in raw or raw.lower().lstrip("-").startswith(("inf", "nan")):
        raise _error(text, start + 1, f"invalid number {raw!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _error(text, start + 1, f"number {raw!r} is out of range")
    tokens.append(Token("number", raw, start + 1, value))
    return i


# -- the syntax tree --------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """`name`, or `metadata.a.b` as ('metadata', 'a', 'b')."""

    path: tuple[str, ...]
    pos: int

    @property
    def head(self) -> str:
        return self.path[0]

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys inside a JSON field: ('a', 'b') of metadata.a.b."""
        return self.path[1:]

    def __str__(self) -> str:
        return format_path(self.path)


@dataclass(frozen=True)
class Const:
    """A literal value (or a parameter's), and where it was written."""

    value: Value
    pos: int


@dataclass(frozen=True)
class Compare:
    field: Field
    op: Op
    value: Const


@dataclass(frozen=True)
class In:
    field: Field
    values: tuple[Const, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    """`field LIKE 'pat%'`: % any run of characters, _ one, backslash escapes either."""

    field: Field
    pattern: Const
    negated: bool
    ignore_case: bool  # ILIKE: ASCII letters only, identically on every catalog


@dataclass(frozen=True)
class Not:
    item: Expr
    pos: int


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


Expr = Compare | In | Like | Not | And | Or


@dataclass(frozen=True)
class Order:
    """A sort: `-summary.val_acc` is (Field('summary','val_acc'), descending=True)."""

    field: Field
    descending: bool


def fields(expr: Expr | None) -> list[Field]:
    """Every field the expression names, in order."""
    if expr is None:
        return []
    if isinstance(expr, (And, Or)):
        return [f for item in expr.items for f in fields(item)]
    if isinstance(expr, Not):
        return fields(expr.item)
    return [expr.field]


def format_path(path: tuple[str, ...]) -> str:
    """('metadata', 'learning rate') -> 'metadata."learning rate"': a field as written."""
    return ".".join(p if _plain(p) else f'"{p}"' for p in path)


def _plain(name: str) -> bool:
    return (
        bool(name)
        and (name[0].isalpha() or name[0] == "_")
        and name.lower() not in KEYWORDS
        and all(ch.isalnum() or ch in "_-" for ch in name)
    )


# -- the parser -------------------------------------------------------------------------


def parse(text: str, params: Mapping[str, Any] | None = None) -> Expr | None:
    """The expression `text` means, or None for an empty query (everything)."""
    if not isinstance(text, str):
        raise InvalidQuery(f"a query is a string, not {type(text).__name__}")
    parser = _Parser(text, params or {})
    if parser.peek().kind == "end":
        return None
    expr = parser.or_()
    parser.expect_end()
    return expr


def parse_order(text: str) -> Order:
    """`field` (ascending) or `-field` (descending)."""
    if not isinstance(text, str):
        raise InvalidQuery(f"order_by is a field name, not {type(text).__name__}")
    stripped = text.strip()
    descending = stripped.startswith("-")
    body = stripped[1:] if descending else stripped
    offset = len(text) - len(text.lstrip()) + (1 if descending else 0)
    parser = _Parser(body, {}, source=text, offset=offset, what="order_by")
    if parser.peek().kind == "end":
        raise InvalidQuery(
            "it needs a field, e.g. '-created_at' or 'metadata.accuracy'", what="order_by"
        )
    field = parser.field()
    parser.expect_end()
    return Order(field, descending)


class _Parser:
    def __init__(
        self,
        text: str,
        params: Mapping[str, Any],
        *,
        source: str | None = None,
        offset: int = 0,
        what: str = "query",
    ):
        self.source = text if source is None else source
        self.offset = offset
        self.what = what
        try:
            self.tokens = tokenize(text)
        except InvalidQuery as exc:
            raise _error(self.source, exc.position + offset, exc.reason, what) from None
        self.params = params
        self.i = 0
        self.depth = 0

    def error(self, token: Token, reason: str) -> InvalidQuery:
        return _error(self.source, token.pos + self.offset, reason, self.what)

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind != "end":
            joins = token.kind != "symbol" and self.what == "query"
            hint = " (combine conditions with AND or OR)" if joins else ""
            raise self.error(token, f"unexpected {token.describe()}{hint}")

    def nested(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(token, f"nested more than {MAX_DEPTH} levels deep")

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.peek().is_keyword("or"):
            self.next()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.not_()]
        while self.peek().is_keyword("and"):
            self.next()
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self) -> Expr:
        token = self.peek()
        if token.is_keyword("not"):
            self.next()
            self.nested(token)
            item = self.not_()
            self.depth -= 1
            return Not(item, token.pos + self.offset)
        if token.is_symbol("("):
            self.next()
            self.nested(token)
            expr = self.or_()
            closing = self.next()
            if not closing.is_symbol(")"):
                raise self.error(closing, f"expected ')' to close the '(' at position {token.pos}")
            self.depth -= 1
            return expr
        return self.comparison()

    def comparison(self) -> Expr:
        field = self.field()
        token = self.next()
        if token.kind == "symbol" and token.text in _OPS:
            return Compare(field, _OPS[token.text], self.value())
        negated = token.is_keyword("not")
        if negated:
            token = self.next()
        if token.is_keyword("in"):
            return In(field, self.values(), negated)
        if token.is_keyword("like", "ilike"):
            pattern = self.value()
            if not isinstance(pattern.value, str):
                raise _error(
                    self.source, pattern.pos, f"{token.text.upper()} takes a string", self.what
                )
            return Like(field, pattern, negated, ignore_case=token.is_keyword("ilike"))
        if token.is_keyword("is") and not negated:
            negated = self.peek().is_keyword("not")
            if negated:
                self.next()
            null = self.next()
            if not null.is_keyword("null"):
                raise self.error(null, f"expected NULL after IS, got {null.describe()}")
            return Compare(field, "!=" if negated else "=", Const(None, null.pos + self.offset))
        expected = (
            "IN, LIKE or ILIKE" if negated else "a comparison (=, !=, <, <=, >, >=, IN, LIKE)"
        )
        raise self.error(token, f"expected {expected} after {field}, got {token.describe()}")

    def field(self) -> Field:
        token = self.next()
        if token.kind != "name" or token.text.lower() in KEYWORDS:
            raise self.error(token, f"expected a field name, got {token.describe()}")
        path = [token.text]
        while self.peek().is_symbol("."):
            self.next()
            key = self.next()
            if key.kind not in ("name", "quoted"):
                raise self.error(key, f"expected a key after '.', got {key.describe()}")
            path.append(key.text)
        return Field(tuple(path), token.pos + self.offset)

    def values(self) -> tuple[Const, ...]:
        opening = self.next()
        if not opening.is_symbol("("):
            raise self.error(opening, f"expected '(' after IN, got {opening.describe()}")
        values = [self.value()]
        while self.peek().is_symbol(","):
            self.next()
            values.append(self.value())
        closing = self.next()
        if not closing.is_symbol(")"):
            raise self.error(
                closing, f"expected ',' or ')' in the IN list, got {closing.describe()}"
            )
        return tuple(values)

    def value(self) -> Const:
        token = self.next()
        pos = token.pos + self.offset
        if token.kind in ("string", "number"):
            return Const(token.value, pos)
        if token.is_keyword("true", "false"):
            return Const(token.text.lower() == "true", pos)
        if token.is_keyword("null"):
            return Const(None, pos)
        if token.kind == "param":
            return Const(self.param(token), pos)
        hint = " (strings take single quotes)" if token.kind in ("name", "quoted") else ""
        raise self.error(token, f"expected a value, got {token.describe()}{hint}")

    def param(self, token: Token) -> Value:
        if token.text not in self.params:
            known = ", ".join(f":{k}" for k in sorted(self.params)) or "none were given"
            raise self.error(token, f"no value for parameter :{token.text} (params: {known})")
        value = self.params[token.text]
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(token, f"parameter :{token.text} is {value}, not a finite number")
        if value is None or isinstance(value, (str, int, float, bool, datetime)):
            return value
        raise self.error(
            token,
            f"parameter :{token.text} is a {type(value).__name__}; "
            "use a string, number, boolean, datetime or None",
        )


def _error(text: str, pos: int, reason: str, what: str = "query") -> InvalidQuery:
    return InvalidQuery(reason, query=text, position=pos, what=what)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
