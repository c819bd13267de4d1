"""The FinQA program language: a list of steps, each an operation over two arguments.

A program reads ``subtract(5829, 5735), divide(#0, 5735)``: step ``#0`` subtracts, step
``#1`` divides the result of step ``#0`` by 5735, and the last step is the answer. FinQA
files also store the tokenised form ``["subtract(", "5829", "5735", ")", "divide(",
"#0", "5735", ")", "EOF"]``; both parse to the same list of :class:`Step`.

Arguments are kept as text here; :mod:`vfm.plugins.finance.language.executor` gives them values:

- numbers as written in the document (``5829``, ``-3.5``, ``5.2%``);
- constants ``const_1`` ... ``const_1000000000`` (``const_X`` is X) and ``const_m1`` (-1);
- step references ``#N``, the result of an earlier step;
- for the ``table_*`` operations, a row name of the table, then ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vfm.platform.errors import VfmError

ARITHMETIC_OPS = ("add", "subtract", "multiply", "divide", "exp", "greater")
"""Operations over two numbers; ``greater`` answers ``yes`` or ``no``."""

TABLE_OPS = ("table_max", "table_min", "table_sum", "table_average")
"""Operations over the numeric cells of one table row (named by its first cell)."""

OPERATIONS = ARITHMETIC_OPS + TABLE_OPS
"""Every operation of the FinQA language, in the order of FinQA's ``operation_list.txt``."""

NO_ARGUMENT = "none"
"""The placeholder second argument of the ``table_*`` operations."""

END_TOKEN = "EOF"
"""The last token of a tokenised program."""


@dataclass(frozen=True)
class Step:
    """One operation of a program.

    Attributes:
        op: one of :data:`OPERATIONS`.
        args: the arguments as written: two for arithmetic operations, a row name and
            ``none`` for table operations.
    """

    op: str
    args: tuple[str, ...]

    def render(self) -> str:
        """The step as FinQA writes it, e.g. ``divide(#0, 5735)``."""
        return f"{self.op}({', '.join(self.args)})"


Program = str | Sequence[str] | Sequence[Step]
"""Any form a program is accepted in: its string, FinQA tokens, or parsed steps."""


def parse_program(program: Program) -> list[Step]:
    """Parse a program from its string or its tokenised form (or check parsed steps).

    Args:
        program: ``"subtract(5829, 5735), divide(#0, 5735)"``, the FinQA token list
            ``["subtract(", "5829", "5735", ")", ..., "EOF"]`` (the ``EOF`` is optional),
            or a sequence of :class:`Step`.

    Returns:
        The steps in order; a table operation given only its row name gets ``none`` added.

    Raises:
        VfmError: the program is empty or malformed, names an unknown operation, or a
            step has the wrong number of arguments.
    """
    if isinstance(program, str):
        steps = _parse_text(program)
    elif all(isinstance(step, Step) for step in program):
        steps = list(program)  # type: ignore[arg-type]
    else:
        steps = _parse_tokens(program)  # type: ignore[arg-type]
    if not steps:
        raise VfmError(
            "the program has no steps",
            where=_shown(program),
            fix="write steps such as 'subtract(5829, 5735), divide(#0, 5735)'",
        )
    return [_checked(step, index) for index, step in enumerate(steps)]


def render_program(steps: Sequence[Step]) -> str:
    """The program string, e.g. ``subtract(5829, 5735), divide(#0, 5735)``."""
    return ", ".join(step.render() for step in steps)


def program_tokens(steps: Sequence[Step]) -> list[str]:
    """The FinQA token list, e.g. ``["subtract(", "5829", "5735", ")", "EOF"]``."""
    tokens: list[str] = []
    for step in steps:
        tokens += [f"{step.op}(", *step.args, ")"]
    return [*tokens, END_TOKEN]


def step_reference(text: str) -> int | None:
    """The step index of a reference ``#N``, or None when ``text`` is not a reference."""
    text = text.strip()
    if text.startswith("#") and text[1:].isdigit():
        return int(text[1:])
    return None


def _parse_text(program: str) -> list[Step]:
    """Split ``op(args), op(args)`` at top-level commas; parentheses inside arguments
    (row names such as ``visa inc. ( 1 )``) are kept whole."""
    steps: list[Step] = []
    rest = program.strip().removesuffix(END_TOKEN).strip().rstrip(",").strip()
    while rest:
        open_at = rest.find("(")
        close_at = _matching_paren(rest, open_at) if open_at >= 0 else -1
        if close_at < 0:
            raise VfmError("unbalanced parentheses in the program", where=program, fix="close every 'op(' with ')'")
        op, inner = rest[:open_at].strip(), rest[open_at + 1 : close_at]
        steps.append(Step(op, _split_args(op, inner)))
        rest = rest[close_at + 1 :].strip()
        if rest.startswith(","):
            rest = rest[1:].strip()
        elif rest:
            raise VfmError(
                f"expected ',' between steps, found {rest[:20]!r}", where=program, fix="separate steps with commas"
            )
    return steps


def _matching_paren(text: str, open_at: int) -> int:
    """The index of the ``)`` that closes the ``(`` at ``open_at``, or -1."""
    depth = 0
    for index in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return -1


def _split_args(op: str, inner: str) -> tuple[str, ...]:
    """Arguments separated by commas; a table operation's row name may itself hold commas."""
    if op in TABLE_OPS:
        head, sep, tail = inner.rpartition(",")
        if sep and tail.strip() == NO_ARGUMENT:
            return (head.strip(), NO_ARGUMENT)
        return (inner.strip(),)
    return tuple(arg.strip() for arg in inner.split(","))


def _parse_tokens(tokens: Sequence[str]) -> list[Step]:
    """Group ``op(``, arguments, ``)`` tokens into steps, stopping at ``EOF``."""
    steps: list[Step] = []
    op: str | None = None
    args: list[str] = []
    for token in tokens:
        if token == END_TOKEN and op is None:
            break
        if op is None:
            if not token.endswith("("):
                raise VfmError(
                    f"expected an operation such as 'add(', found {token!r}",
                    where=_shown(tokens),
                    fix="start every step with 'op('",
                )
            op, args = token[:-1].strip(), []
        elif token == ")":
            steps.append(Step(op, tuple(arg.strip() for arg in args)))
            op = None
        else:
            args.append(token)
    if op is not None:
        raise VfmError(f"step '{op}(' is never closed", where=_shown(tokens), fix="end every step with ')'")
    return steps


def _checked(step: Step, index: int) -> Step:
    """Check the operation name and the number of arguments; complete ``table_*(row)``."""
    where = f"step #{index}: {step.render()}"
    if step.op not in OPERATIONS:
        raise VfmError(f"unknown operation {step.op!r}", where=where, fix=f"use one of {', '.join(OPERATIONS)}")
    if step.op in TABLE_OPS:
        if len(step.args) == 1:
            step = Step(step.op, (step.args[0], NO_ARGUMENT))
        if len(step.args) != 2 or step.args[1] != NO_ARGUMENT or not step.args[0]:
            raise VfmError(
                f"{step.op} takes a row name and 'none', got {len(step.args)} argument(s)",
                where=where,
                fix=f"write {step.op}(row name, none)",
            )
    elif len(step.args) != 2 or not all(step.args):
        raise VfmError(
            f"{step.op} takes 2 arguments, got {len([a for a in step.args if a])}",
            where=where,
            fix=f"write {step.op}(a, b)",
        )
    return step


def _shown(program: Program) -> str:
    """The program as it appears in an error message."""
    if isinstance(program, str):
        return program
    return " ".join(step.render() if isinstance(step, Step) else step for step in program)
