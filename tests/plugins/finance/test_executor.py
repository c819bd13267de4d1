"""Executing FinQA programs: official semantics, the step trace, and clear failures."""

from __future__ import annotations

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.language.executor import StepResult, execute, trace

TABLE = [
    ["", "2019", "2018", "2017"],
    ["net sales", "$ 5,829", "$ 5,735", "$ 5,100"],
    ["operating margin", "27% ( 27 % )", "25% ( 25 % )", "24% ( 24 % )"],
    ["interest rate hedges", "$ -8683 ( 8683 )", "$ -2,100 ( 2100 )", "511"],
    ["other", "(12)", "n/a", "4"],
    ["total", "1", "2", "3"],
    ["total", "10", "20", "30"],
    ["zero", "0", "0", "0"],
]


@pytest.mark.parametrize(
    ("program", "answer"),
    [
        ("subtract(5829, 5735), divide(#0, 5735)", 0.01639),
        (["subtract(", "5829", "5735", ")", "divide(", "#0", "5735", ")", "EOF"], 0.01639),
        ("multiply(25%, 5283.3)", 1320.825),
        ("subtract(62%, 61%)", 0.01),
        ("divide(637, const_5)", 127.4),
        ("multiply(3, const_m1)", -3.0),
        ("exp(1.5, 2)", 2.25),
        ("divide(6.9%, const_100), add(const_1, #0), exp(#1, 10), multiply(4273.1, #2)", 4302.67611),
        ("greater(178.93, 105.34)", "yes"),
        ("subtract(17.84, 4.11), subtract(60.15, 41.30), greater(#0, #1)", "no"),
        ("table_sum(net sales, none)", 16664.0),
        ("table_average(net sales, none)", 5554.66667),
        ("table_max(operating margin, none)", 0.27),
        ("table_average(operating margin, none), table_max(operating margin, none), subtract(#1, #0)", 0.01667),
        ("table_min(interest rate hedges, none)", -8683.0),
        ("table_sum(total, none)", 60.0),  # duplicate names: the later row wins, as in FinQA
        ("table_sum(Net  Sales, none)", 16664.0),  # no exact match: case and spacing are ignored
    ],
)
def test_execute_gives_the_official_answer(program, answer):
    assert execute(program, TABLE) == answer


def test_only_the_final_answer_is_rounded():
    steps = trace("divide(1, 3), multiply(#0, 3)", [])
    assert steps[0].value == 1 / 3 and execute("divide(1, 3)", []) == 0.33333
    assert execute("divide(1, 3), multiply(#0, 3)", []) == 1.0


def test_trace_lists_every_step():
    assert trace("subtract(5829, 5735), divide(#0, 5735)", TABLE) == [
        StepResult("subtract", ("5829", "5735"), 94.0),
        StepResult("divide", ("#0", "5735"), 94.0 / 5735),
    ]


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("divide(5, 0)", "division by zero"),
        ("subtract(5, 5), divide(1, #0)", "division by zero"),
        ("table_sum(zero, none), divide(5, #0)", "division by zero"),
        ("exp(0, -1)", "cannot be computed"),
        ("exp(10, 400)", "cannot be computed"),
        ("exp(-8, 0.5)", "no finite real value"),
        ("modulo(5, 3)", "unknown operation"),
        ("add(5)", "takes 2 arguments"),
        ("add(#0, 1)", "refers to a step that is not computed yet"),
        ("add(1, 2), add(#1, 1)", "refers to a step that is not computed yet"),
        ("greater(2, 1), add(#0, 1)", "'yes', not a number"),
        ("add(revenue, 1)", "argument 'revenue' is not a number"),
        ("add($5, 1)", "is not a number"),
        ("table_max(revenue, none)", "no table row is named 'revenue'"),
        ("table_sum(other, none)", "non-numeric cell 'n/a' in column 2"),
    ],
)
def test_failures_are_vfm_errors_naming_the_step(program, message):
    with pytest.raises(VfmError, match=message) as err:
        execute(program, TABLE)
    assert "step #" in str(err.value) and "\n" not in str(err.value)


def test_division_by_zero_never_leaks_python_errors():
    with pytest.raises(VfmError) as err:
        execute("divide(5, 0)", [])
    assert not isinstance(err.value, ZeroDivisionError) and "inf" not in str(err.value)


def test_a_row_without_cells_is_refused():
    with pytest.raises(VfmError, match="no cells"):
        execute("table_sum(lonely, none)", [["", "2020"], ["lonely"]])


def test_table_operations_refuse_the_header_row():
    """The header holds column names (years), not values: a table op over it is an error, not a sum of years."""
    table = [["", "2020", "2019"], ["revenue", "10", "20"]]
    assert execute("table_sum(revenue, none)", table) == 30.0
    with pytest.raises(VfmError, match="header row"):
        execute("table_max(year, none)", [["year", "2020", "2019"], *table[1:]])
