"""The FinQA program language: parsing both forms, rendering, and malformed programs."""

from __future__ import annotations

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.language.program import (
    OPERATIONS,
    Step,
    parse_program,
    program_tokens,
    render_program,
    step_reference,
)

TEXT = "subtract(5829, 5735), divide(#0, 5735)"
TOKENS = ["subtract(", "5829", "5735", ")", "divide(", "#0", "5735", ")", "EOF"]
STEPS = [Step("subtract", ("5829", "5735")), Step("divide", ("#0", "5735"))]


def test_operations_are_exactly_finqas():
    assert set(OPERATIONS) == {
        "add",
        "subtract",
        "multiply",
        "divide",
        "exp",
        "greater",
        "table_max",
        "table_min",
        "table_sum",
        "table_average",
    }


@pytest.mark.parametrize("program", [TEXT, TOKENS, TOKENS[:-1], STEPS, f"{TEXT}, EOF", f"  {TEXT}  "])
def test_both_forms_parse_to_the_same_steps(program):
    assert parse_program(program) == STEPS


def test_render_and_tokens_round_trip():
    assert render_program(STEPS) == TEXT
    assert program_tokens(STEPS) == TOKENS
    assert parse_program(program_tokens(parse_program(TEXT))) == STEPS


def test_table_row_names_may_hold_commas_and_parentheses():
    steps = parse_program("table_max(visa inc. ( 1 ), none), table_sum(selling, general and admin, none)")
    assert steps == [
        Step("table_max", ("visa inc. ( 1 )", "none")),
        Step("table_sum", ("selling, general and admin", "none")),
    ]


def test_table_operation_without_none_gets_it():
    assert parse_program("table_average(net sales)") == [Step("table_average", ("net sales", "none"))]


def test_constants_and_percentages_stay_as_written():
    assert parse_program("multiply(25%, const_m1)")[0].args == ("25%", "const_m1")


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("", "no steps"),
        ("modulo(5, 3)", "unknown operation 'modulo'"),
        ("add(5)", "add takes 2 arguments, got 1"),
        ("add(5, 3, 1)", "add takes 2 arguments, got 3"),
        (["table_max(", "a", "b", ")"], "table_max takes a row name and 'none'"),
        ("table_max()", "table_max takes a row name and 'none'"),
        ("add(5, 3", "unbalanced parentheses"),
        ("add(5, 3) divide(#0, 2)", "expected ',' between steps"),
        (["add(", "5", "3"], "never closed"),
        (["5", "add("], "expected an operation"),
    ],
)
def test_malformed_programs_are_one_line_errors(program, message):
    with pytest.raises(VfmError, match=message.replace("(", r"\(")) as err:
        parse_program(program)
    assert "\n" not in str(err.value) and "fix:" in str(err.value)


@pytest.mark.parametrize(("text", "index"), [("#0", 0), ("#12", 12), (" #3 ", 3), ("5", None), ("#x", None)])
def test_step_reference(text, index):
    assert step_reference(text) == index
