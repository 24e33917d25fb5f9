"""The analysis condition language: parses what a threshold needs, refuses the rest with a
column, and evaluates without eval."""

from __future__ import annotations

import pytest

from services.deploy.domain.conditions import ConditionError, format_number, parse_condition


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("result < 0.05", 0.01, True),
        ("result < 0.05", 0.05, False),
        ("result <= 0.05", 0.05, True),
        ("result <= 0.05", 0.0500001, False),
        ("result > 1", 1.5, True),
        ("result > 1", 1, False),
        ("result >= 1", 1, True),
        ("result >= 1", 0.999, False),
        ("result == 0", 0, True),
        ("result == 0", 1e-9, False),
        ("result != 0", 1e-9, True),
        ("result != 0", 0, False),
        ("0.05 > result", 0.01, True),
        ("0.05 > result", 0.06, False),
        ("result > -1", -0.5, True),
        ("result > -1", -2, False),
        ("result < +1.5e-3", 0.001, True),
        ("result < 1E3", 1001, False),
        ("result < .5", 0.4, True),
        ("result < 5.", 5, False),
        ("result >= 0.9 and result <= 1", 0.95, True),
        ("result >= 0.9 and result <= 1", 1.01, False),
        ("result < 0.1 or result > 0.9", 0.95, True),
        ("result < 0.1 or result > 0.9", 0.5, False),
        ("not result > 1", 0.5, True),
        ("not (result > 1)", 2, False),
        ("not not result > 1", 2, True),
        ("(result < 1 or result > 2) and result != 5", 5, False),
        ("(result < 1 or result > 2) and result != 5", 3, True),
        ("result < 1 or result > 2 and result < 3", 2.5, True),  # and binds tighter
        ("result < 1 or result > 2 and result < 3", 4, False),
        ("result > 0 && result < 1 || !(result != 7)", 7, True),
        ("result > 0 && result < 1 || !(result != 7)", 6, False),
    ],
)
def test_a_condition_evaluates_as_written(text: str, value: float, expected: bool) -> None:
    assert parse_condition(text).evaluate(value) is expected


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("result<0.05", "result < 0.05"),
        ("0.05 > result", "result < 0.05"),
        ("1 <= result", "result >= 1"),
        ("5 == result", "result == 5"),
        ("result < 1.0", "result < 1"),
        ("result < 1e-3", "result < 0.001"),
        ("result < 1e20", "result < 1e+20"),
        ("result > -0.5", "result > -0.5"),
        ("result>=0.9 && result<=1", "result >= 0.9 and result <= 1"),
        ("(result < 1 || result > 2) and result != 5",
         "(result < 1 or result > 2) and result != 5"),
        ("result < 1 or (result > 2 and result < 3)", "result < 1 or result > 2 and result < 3"),
        ("!result > 1", "not (result > 1)"),
        ("not not result > 1", "not not (result > 1)"),
        ("((result < 1))", "result < 1"),
        ("not (result < 1 and result > 0)", "not (result < 1 and result > 0)"),
    ],
)
def test_str_is_the_normalised_text_and_parses_back_to_the_same(
    text: str, normalised: str
) -> None:
    condition = parse_condition(text)
    assert str(condition) == normalised
    assert parse_condition(str(condition)) == condition


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("", 1, "empty condition"),
        ("   ", 4, "empty condition"),
        ("result", 7, "expected a comparison"),
        ("result <", 9, "expected result or a number, found the end"),
        ("result < and", 10, "expected result or a number"),
        ("1 < 2", 1, "needs result on one side"),
        ("result < result", 10, "not with itself"),
        ("result[0] < 0.05", 7, "indexing (result[0]) is not supported"),
        ("len(result) == 0", 1, "unknown name 'len'"),
        ("value < 1", 1, "unknown name 'value'"),
        ("result AND result", 8, "unknown name 'AND'"),
        ("result = 1", 8, "use =="),
        ("0 < result < 1", 12, "chained comparisons"),
        ("(result < 1", 12, "expected ')' to close the '(' at column 1"),
        ("result < 1)", 11, "unexpected ')'"),
        ("result < 1 result > 2", 12, "unexpected 'result'"),
        ("result < 1e999", 10, "out of range"),
        ("result < 1.2.3", 10, "malformed number"),
        ("result < 5ms", 10, "malformed number"),
        ("result < 0x10", 10, "malformed number"),
        ("result -1 > 0", 8, "unexpected character '-'"),
        ("result < nan", 10, "unknown name 'nan'"),
        ("result < inf", 10, "unknown name 'inf'"),
        ("result < 1; import os", 11, "unexpected character ';'"),
        ("__import__('os')", 1, "unknown name '__import__'"),
        ("(" * 100 + "result < 1" + ")" * 100, 65, "nested more than 64 levels"),
        ("not " * 100 + "result < 1", 257, "nested more than 64 levels"),
    ],
)
def test_a_bad_condition_is_refused_naming_text_and_column(
    text: str, column: int, problem: str
) -> None:
    with pytest.raises(ConditionError) as raised:
        parse_condition(text)
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.column == column
    assert error.text == text
    assert problem in error.problem
    assert repr(text) in str(error) and f"column {column}" in str(error)


def test_a_multi_valued_result_passes_only_when_every_value_passes() -> None:
    condition = parse_condition("result < 0.05")
    assert condition.evaluate_all([0.01, 0.02, 0.049])
    assert not condition.evaluate_all([0.01, 0.2, 0.02])


@pytest.mark.parametrize(
    ("text", "value", "explained"),
    [
        ("result < 0.05", 0.2, "0.2 >= 0.05"),
        ("result < 0.05", 0.01, "0.01 < 0.05"),
        ("0.05 > result", 0.2, "0.2 >= 0.05"),
        ("result >= 0.9 and result <= 1", 1.5, "1.5 > 1"),
        ("result >= 0.9 and result <= 1", 0.95, "0.95 >= 0.9 and 0.95 <= 1"),
        ("result < 0.1 or result > 0.9", 0.5, "0.5 >= 0.1 and 0.5 <= 0.9"),
        ("result < 0.1 or result > 0.9", 0.95, "0.95 > 0.9"),
        ("not (result > 1)", 2, "2 > 1"),
    ],
)
def test_explain_shows_the_comparisons_that_decide_with_the_value(
    text: str, value: float, explained: str
) -> None:
    assert parse_condition(text).explain(value) == explained


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.05, "0.05"), (1.0, "1"), (-0.0, "0"), (1e-5, "1e-05"), (2.5e20, "2.5e+20"),
     (0.1 + 0.2, "0.30000000000000004"), (float("nan"), "NaN"), (float("inf"), "+Inf"),
     (float("-inf"), "-Inf"), (3, "3")],
)
def test_numbers_are_shown_exactly_and_briefly(value: float, text: str) -> None:
    assert format_number(value) == text
