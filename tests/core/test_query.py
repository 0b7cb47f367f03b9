"""The search language on its own: tokens, the syntax tree, precedence, errors with positions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cairn import InvalidQuery
from cairn.foundation.query import (
    And,
    Compare,
    Const,
    Field,
    In,
    Like,
    Not,
    Or,
    Order,
    fields,
    format_path,
    parse,
    parse_order,
    tokenize,
)


def f(*path: str, pos: int) -> Field:
    return Field(path, pos)


def test_an_empty_query_matches_everything():
    assert parse("") is None
    assert parse("   \n\t") is None


def test_a_comparison_has_a_field_an_operator_and_a_value_with_their_positions():
    assert parse("metadata.accuracy >= 0.9") == Compare(
        f("metadata", "accuracy", pos=1), ">=", Const(0.9, 22)
    )


@pytest.mark.parametrize(
    ("text", "op"),
    [("=", "="), ("==", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<=")]
    + [(">", ">"), (">=", ">=")],
)
def test_every_comparison_operator(text, op):
    assert parse(f"size {text} 3") == Compare(f("size", pos=1), op, Const(3, 7 + len(text)))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'model'", "model"),
        ("'it''s'", "it's"),
        ("''", ""),
        ("'a AND b'", "a AND b"),
        ("'ünïcødé ✓'", "ünïcødé ✓"),
        ("42", 42),
        ("-7", -7),
        ("0.5", 0.5),
        ("-2.5e3", -2500.0),
        ("1E-3", 0.001),
        ("12345678901234567890", 12345678901234567890),
        ("true", True),
        ("FALSE", False),
        ("null", None),
        ("NULL", None),
    ],
)
def test_literals(text, value):
    expr = parse(f"x = {text}")
    assert isinstance(expr, Compare)
    assert expr.value.value == value and type(expr.value.value) is type(value)


def test_integers_stay_integers_and_decimals_are_floats():
    assert isinstance(parse("x = 10").value.value, int)  # type: ignore[union-attr]
    assert isinstance(parse("x = 10.0").value.value, float)  # type: ignore[union-attr]


def test_keywords_are_case_insensitive_and_names_are_not():
    assert parse("a = 1 and B = 2 Or not c = 3") == Or(
        (
            And(
                (
                    Compare(f("a", pos=1), "=", Const(1, 5)),
                    Compare(f("B", pos=11), "=", Const(2, 15)),
                )
            ),
            Not(Compare(f("c", pos=24), "=", Const(3, 28)), 20),
        )
    )


def shape(expr) -> str:
    """The tree without positions: 'a = 1 OR (b = 1 AND c = 1)' -> '(a=1 OR (b=1 AND c=1))'."""
    if isinstance(expr, (And, Or)):
        word = " AND " if isinstance(expr, And) else " OR "
        return "(" + word.join(shape(e) for e in expr.items) + ")"
    if isinstance(expr, Not):
        return f"NOT {shape(expr.item)}"
    return f"{expr.field}{expr.op}{expr.value.value}"


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a = 1 OR b = 1 AND c = 1", "(a=1 OR (b=1 AND c=1))"),
        ("a = 1 AND b = 1 OR c = 1", "((a=1 AND b=1) OR c=1)"),
        ("(a = 1 OR b = 1) AND c = 1", "((a=1 OR b=1) AND c=1)"),
        ("a = 1 AND (b = 1 OR c = 1)", "(a=1 AND (b=1 OR c=1))"),
        ("NOT a = 1 AND b = 1", "(NOT a=1 AND b=1)"),
        ("NOT (a = 1 AND b = 1)", "NOT (a=1 AND b=1)"),
        ("a = 1 OR b = 1 OR c = 1", "(a=1 OR b=1 OR c=1)"),
        ("((a = 1))", "a=1"),
    ],
)
def test_and_binds_tighter_than_or_and_parentheses_override_it(text, tree):
    assert shape(parse(text)) == tree


def test_not_applies_to_the_next_condition_only():
    expr = parse("NOT a = 1 AND b = 2")
    assert isinstance(expr, And) and isinstance(expr.items[0], Not)
    assert parse("NOT NOT a = 1") == Not(Not(Compare(f("a", pos=9), "=", Const(1, 13)), 5), 1)


def test_in_lists_and_their_negation():
    assert parse("config.lr IN (0.1, 0.01, 'auto', null)") == In(
        f("config", "lr", pos=1),
        (Const(0.1, 15), Const(0.01, 20), Const("auto", 26), Const(None, 34)),
        negated=False,
    )
    expr = parse("state NOT IN ('DELETED')")
    assert isinstance(expr, In) and expr.negated


def test_like_ilike_and_is_null():
    assert parse("name LIKE 'mn%'") == Like(f("name", pos=1), Const("mn%", 11), False, False)
    assert parse("name not ilike 'MN%'") == Like(f("name", pos=1), Const("MN%", 16), True, True)
    assert parse("description IS NULL") == Compare(f("description", pos=1), "=", Const(None, 16))
    assert parse("description IS NOT NULL") == Compare(
        f("description", pos=1), "!=", Const(None, 20)
    )


def test_nested_and_quoted_keys():
    expr = parse('metadata.train."learning rate".x-y = 1')
    assert isinstance(expr, Compare)
    assert expr.field.path == ("metadata", "train", "learning rate", "x-y")
    assert str(expr.field) == 'metadata.train."learning rate".x-y'
    # a key that is a keyword or starts with a digit is written quoted
    assert format_path(("metadata", "and", "2nd", "a.b")) == 'metadata."and"."2nd"."a.b"'
    assert parse('metadata."and" = 1').field.path == ("metadata", "and")  # type: ignore[union-attr]


def test_parameters_fill_values_and_are_never_parsed_as_query_text():
    moment = datetime(2024, 5, 1, tzinfo=timezone.utc)
    expr = parse(
        "group = :g AND created_at > :t AND x IN (:a, :b)",
        {"g": "x' OR '1'='1", "t": moment, "a": 1, "b": None},
    )
    assert isinstance(expr, And)
    assert expr.items[0] == Compare(f("group", pos=1), "=", Const("x' OR '1'='1", 9))
    assert expr.items[1].value.value == moment  # type: ignore[union-attr]


def test_fields_lists_every_field_a_query_names():
    expr = parse("a = 1 AND (NOT b.c = 2 OR d IN (1)) AND e LIKE 'x'")
    assert [str(x) for x in fields(expr)] == ["a", "b.c", "d", "e"]
    assert fields(None) == []


def test_order_by():
    assert parse_order("-summary.val_acc") == Order(f("summary", "val_acc", pos=2), True)
    assert parse_order("created_at") == Order(f("created_at", pos=1), False)
    assert parse_order('  -metadata."a b"') == Order(f("metadata", "a b", pos=4), True)


def test_tokens_carry_positions():
    tokens = tokenize("a.b >= 'x'")
    assert [(t.kind, t.text, t.pos) for t in tokens] == [
        ("name", "a", 1),
        ("symbol", ".", 2),
        ("name", "b", 3),
        ("symbol", ">=", 5),
        ("string", "x", 8),
        ("end", "", 11),
    ]


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("metadata.acc >", 15, "expected a value, got the end of the query"),
        ("metadata.acc > > 1", 16, "expected a value, got '>'"),
        ("name = model", 8, "expected a value, got 'model' (strings take single quotes)"),
        ("name = 'model", 8, "unterminated string"),
        ('metadata."acc = 1', 10, "unterminated quoted name"),
        ("a = 1 b = 2", 7, "unexpected 'b' (combine conditions with AND or OR)"),
        ("(a = 1", 7, "expected ')' to close the '(' at position 1"),
        ("a = 1)", 6, "unexpected ')'"),
        ("a = 1 AND", 10, "expected a field name, got the end of the query"),
        ("a # 1", 3, "unexpected character '#'"),
        ("a ; DROP TABLE versions", 3, "unexpected character ';'"),
        ("and = 1", 1, "expected a field name, got 'and'"),
        ("a.1 = 2", 3, "expected a key after '.', got '1'"),
        ("a = 12abc", 5, "invalid number '12abc'"),
        ("a = 1e999", 5, "out of range"),
        ("a IN 1", 6, "expected '(' after IN"),
        ("a IN (1 2)", 9, "expected ',' or ')' in the IN list"),
        ("a IN ()", 7, "expected a value, got ')'"),
        ("a LIKE 5", 8, "LIKE takes a string"),
        ("a IS 5", 6, "expected NULL after IS"),
        ("a NOT = 1", 7, "expected IN, LIKE or ILIKE after a"),
        ("a", 2, "expected a comparison"),
        ("a = :missing", 5, "no value for parameter :missing"),
        ("a = :", 5, "a parameter needs a name"),
        ("'x' = a", 1, "expected a field name, got string 'x'"),
        ("a = 'nul\x00'", 5, "NUL"),
    ],
)
def test_malformed_queries_name_the_position(text, position, reason):
    with pytest.raises(InvalidQuery) as info:
        parse(text)
    assert info.value.position == position
    assert reason in info.value.reason
    assert str(info.value).startswith(f"invalid query at position {position}: ")
    assert "\n" not in str(info.value)


def test_a_parameter_must_be_a_plain_value():
    with pytest.raises(InvalidQuery, match="parameter :x is a list"):
        parse("a = :x", {"x": [1, 2]})
    with pytest.raises(InvalidQuery, match="not a finite number"):
        parse("a = :x", {"x": float("nan")})


def test_deep_nesting_is_refused_not_a_recursion_error():
    with pytest.raises(InvalidQuery, match="nested more than"):
        parse("(" * 500 + "a = 1" + ")" * 500)
    with pytest.raises(InvalidQuery, match="nested more than"):
        parse("NOT " * 500 + "a = 1")
    assert parse("(" * 50 + "a = 1" + ")" * 50) == Compare(f("a", pos=51), "=", Const(1, 55))


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 0, "it needs a field"),
        ("-", 0, "it needs a field"),
        ("-a b", 4, "unexpected 'b'"),
        ("a > 1", 3, "unexpected '>'"),
        ("--a", 2, "unexpected character '-'"),
    ],
)
def test_malformed_orders(text, position, reason):
    with pytest.raises(InvalidQuery) as info:
        parse_order(text)
    assert info.value.position == position and reason in info.value.reason
    assert str(info.value).startswith("invalid order_by")


def test_a_query_must_be_text():
    with pytest.raises(InvalidQuery, match="a query is a string"):
        parse(5)  # type: ignore[arg-type]
