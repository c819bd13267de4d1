"""Arithmetic expressions (TAT-QA derivations, ConvFinQA statements) into FinQA steps."""

from __future__ import annotations

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.language.executor import execute
from vfm.plugins.finance.language.expression import compile_expression
from vfm.plugins.finance.language.program import render_program


@pytest.mark.parametrize(
    ("text", "program", "value"),
    [
        ("(5,829 - 5,735) / 5,735", "subtract(5829, 5735), divide(#0, 5735)", 0.01639),
        ("44.1-56.7", "subtract(44.1, 56.7)", -12.6),
        ("4,422 + 15,400 + 7,905", "add(4422, 15400), add(#0, 7905)", 27727.0),
        ("(234 + 259 + 282) / 3", "add(234, 259), add(#0, 282), divide(#1, 3)", 258.33333),
        ("2 + 3 * 4", "multiply(3, 4), add(2, #0)", 14.0),
        ("10 - 4 - 3", "subtract(10, 4), subtract(#0, 3)", 3.0),
        ("-(598 + 268) / 2", "add(598, 268), multiply(#0, const_m1), divide(#1, 2)", -433.0),
        ("-5,637-(-3,990)", "subtract(-5637, -3990)", -1647.0),
        ("-114 - (71)", "subtract(-114, -71)", -43.0),  # statements write negatives as (71)
        ("3 + (13) + 26", "add(3, -13), add(#0, 26)", 16.0),
        (
            "[(166+178)/2] - [(57+44)/2]",
            "add(166, 178), divide(#0, 2), add(57, 44), divide(#2, 2), subtract(#1, #3)",
            121.5,
        ),
        ("($3,800 + $6,690)", "add(3800, 6690)", 10490.0),
        ("4.3%-3.3%", "subtract(4.3%, 3.3%)", 0.01),
        (".455 - .450", "subtract(.455, .450)", 0.005),
        ("36197 > 345059", "greater(36197, 345059)", "no"),
    ],
)
def test_compiles_in_evaluation_order(text, program, value):
    steps, result = compile_expression(text)
    assert render_program(steps) == program
    assert result == f"#{len(steps) - 1}"
    assert execute(steps, []) == value


def test_a_bare_number_compiles_to_no_steps():
    assert compile_expression(" $1,234 ") == ([], "1234")
    assert compile_expression("-(5)") == ([], "5")


def test_names_and_step_offsets_join_programs():
    steps, result = compile_expression("x0 / 25.14", {"x0": "#0"}, first_step=1)
    assert render_program(steps) == "divide(#0, 25.14)" and result == "#1"
    steps, result = compile_expression("-x1", {"x1": "#3"}, first_step=4)
    assert render_program(steps) == "multiply(#3, const_m1)" and result == "#4"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "ends too early"),
        ("5 +", "ends too early"),
        ("(5 + 3", "never closed"),
        ("5 + 3)", r"unexpected '\)'"),
        ("60.3 million + 32,137 thousand", "unexpected 'million'"),
        ("y + 1", "'y' is not defined"),
        ("1,496.5>1,202.9>1,107.7", "unexpected '>'"),
        ("5 ^ 2", "cannot read"),
    ],
)
def test_non_arithmetic_text_is_refused(text, message):
    with pytest.raises(VfmError, match=message):
        compile_expression(text)
