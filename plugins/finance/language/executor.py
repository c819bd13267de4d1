"""Running a FinQA program over a table, with the official evaluation's semantics.

:func:`execute` gives the number (or ``"yes"``/``"no"``) that FinQA's ``eval_program``
gives, rounded as it rounds: ``round(x, 5)`` on the last step only. :func:`trace` gives
every step's value for showing the reasoning. Where the official script silently marks a
program invalid, these raise a :class:`VfmError` that says which step failed and why:
unknown operation, wrong arity, a reference to a step not yet computed, a row not in the
table, a cell or argument that is not a number, division by zero, overflow.

Arguments and cells are read as FinQA reads them (:mod:`vfm.plugins.finance.language.numbers`):
``5.2%`` is 0.052, ``const_m1`` is -1, a cell ``$ -1234 ( 1234 )`` is -1234, and a cell
``(1,234)`` is -1234 (where the official script would reject the row). Row lookup follows
FinQA: the first cell of each row is its name, matched exactly, and when two rows share a
name the later one wins (the official script builds a dict). When no row matches
exactly, a match ignoring case and spacing is accepted.

One deviation from the official script: a table operation naming the header row (row 0, column
names such as years) is refused instead of summing the years; no gold program of the FinQA, TAT-QA
or ConvFinQA records here does that (checked over all 21 table operations of their programs).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vfm.platform.errors import VfmError
from vfm.plugins.finance.language.numbers import finqa_cell_to_num, finqa_str_to_num
from vfm.plugins.finance.language.program import (
    TABLE_OPS,
    Program,
    parse_program,
    render_program,
    step_reference,
)

Value = float | str
"""A step's value: a number, or ``"yes"``/``"no"`` from ``greater``."""

ANSWER_DECIMALS = 5
"""The official evaluation rounds the final answer to this many decimals."""

_BINARY: dict[str, Callable[[float, float], float | complex]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "exp": operator.pow,
}
"""The numeric operations; ``greater`` is handled apart since it answers yes/no."""


@dataclass(frozen=True)
class StepResult:
    """One executed step.

    Attributes:
        op: the operation.
        args: the arguments as written.
        value: the unrounded value of the step.
    """

    op: str
    args: tuple[str, ...]
    value: Value


def execute(program: Program, table: Sequence[Sequence[str]]) -> Value:
    """The answer of a program: its last step's value, rounded to 5 decimals.

    Args:
        program: a program string, FinQA tokens, or parsed steps.
        table: rows of cells; a row's first cell is its name.

    Returns:
        A float, or ``"yes"``/``"no"`` when the last step is ``greater``.

    Raises:
        VfmError: the program is malformed or cannot be computed on this table.
    """
    value = trace(program, table)[-1].value
    return value if isinstance(value, str) else round(value, ANSWER_DECIMALS)


def trace(program: Program, table: Sequence[Sequence[str]]) -> list[StepResult]:
    """Every step of a program with its (unrounded) value, in order.

    Raises:
        VfmError: the program is malformed or cannot be computed on this table.
    """
    steps = parse_program(program)
    results: list[StepResult] = []
    for index, step in enumerate(steps):
        where = f"step #{index}: {step.render()} in {render_program(steps)}"
        if step.op in TABLE_OPS:
            value: Value = _table_op(step.op, _row_values(step.args[0], table, where), where)
        else:
            values = [_argument(arg, results, where) for arg in step.args]
            value = _arithmetic(step.op, values[0], values[1], where)
        results.append(StepResult(step.op, step.args, value))
    return results


def _argument(arg: str, results: Sequence[StepResult], where: str) -> float:
    """The number an argument stands for: a step result, a constant or a literal."""
    reference = step_reference(arg)
    if reference is not None:
        if reference >= len(results):
            raise VfmError(
                f"#{reference} refers to a step that is not computed yet",
                where=where,
                fix=f"refer only to earlier steps, #0 to #{len(results) - 1}"
                if results
                else "the first step cannot refer to a step result",
            )
        value = results[reference].value
        if isinstance(value, str):
            raise VfmError(
                f"#{reference} is {value!r}, not a number",
                where=where,
                fix="use the result of 'greater' only as the final answer",
            )
        return value
    number = finqa_str_to_num(arg)
    if number is None:
        raise VfmError(
            f"argument {arg!r} is not a number",
            where=where,
            fix="use a number (5829, 5.2%), a constant (const_100, const_m1) or a step reference (#0)",
        )
    return number


def _arithmetic(op: str, a: float, b: float, where: str) -> Value:
    """One arithmetic operation, refusing results that are not finite real numbers."""
    if op == "greater":
        return "yes" if a > b else "no"
    if op == "divide" and b == 0:
        raise VfmError(
            f"division by zero: {a:g} / 0", where=where, fix="check the divisor: it is zero in this table or program"
        )
    try:
        value = _BINARY[op](a, b)
    except (OverflowError, ZeroDivisionError) as err:
        raise VfmError(
            f"{op}({a:g}, {b:g}) cannot be computed: {err}", where=where, fix="check the arguments"
        ) from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise VfmError(f"{op}({a:g}, {b:g}) has no finite real value", where=where, fix="check the arguments")
    return float(value)


def _row_values(name: str, table: Sequence[Sequence[str]], where: str) -> list[float]:
    """The numeric cells after the name of the row called ``name`` (a body row: the header, row 0,
    holds column names such as years, not values)."""
    rows = {row[0]: row[1:] for row in table[1:] if row}
    if name not in rows and table and table[0] and _loose(name) == _loose(table[0][0]) and name.strip():
        raise VfmError(
            f"{name!r} names the header row, which holds column names, not values",
            where=where,
            fix="table operations take a row of numbers below the header",
        )
    if name not in rows:
        loose = {_loose(key): cells for key, cells in rows.items()}
        if _loose(name) not in loose:
            names = ", ".join(repr(key) for key in list(rows)[:8])
            raise VfmError(
                f"no table row is named {name!r}",
                where=where,
                fix=f"use a row name from the table's first column, e.g. {names}",
            )
        rows[name] = loose[_loose(name)]
    values = []
    for column, cell in enumerate(rows[name], start=1):
        number = finqa_cell_to_num(cell)
        if number is None:
            raise VfmError(
                f"row {name!r} has a non-numeric cell {cell!r} in column {column}",
                where=where,
                fix="table operations need a row whose cells are all numbers",
            )
        values.append(number)
    if not values:
        raise VfmError(
            f"row {name!r} has no cells after its name", where=where, fix="table operations need a row with numbers"
        )
    return values


def _table_op(op: str, values: list[float], where: str) -> float:
    """max, min, sum or average over a row's numbers."""
    if op == "table_max":
        return max(values)
    if op == "table_min":
        return min(values)
    total = sum(values) if op == "table_sum" else sum(values) / len(values)
    if not math.isfinite(total):
        raise VfmError(f"{op} overflows", where=where, fix="check the row's values")
    return total


def _loose(name: str) -> str:
    """A row name without case or spacing differences."""
    return " ".join(name.lower().split())
