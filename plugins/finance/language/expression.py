"""Arithmetic expressions, such as TAT-QA derivations, compiled into FinQA programs.

``"(5,829 - 5,735) / 5,735"`` compiles to ``subtract(5829, 5735), divide(#0, 5735)``:
operands are emitted before the operation that uses them, left before right, so the
steps come out in evaluation order and the last step is the value of the expression.

Grammar (usual precedence, left-associative)::

    comparison := sum ('>' sum)?
    sum        := product (('+' | '-') product)*
    product    := unary (('*' | '/') unary)*
    unary      := ('-' | '+') unary | atom
    atom       := number | name | '(' comparison ')' | '[' comparison ']'

Square brackets group like parentheses and ``$`` is ignored. A number may carry
thousands commas and a trailing ``%`` (kept: FinQA reads ``5.2%`` as 0.052). A lone
number in parentheses is negative, as statements write it (TAT-QA's ``-114 - (71)`` is
-43). A unary minus folds into a literal (``-3990``) or becomes ``multiply(#k, const_m1)``.
Names (ConvFinQA's ``x0``) stand for earlier results.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from vfm.platform.errors import VfmError
from vfm.plugins.finance.language.program import Step

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?%?|\.\d+%?)"
    r"|(?P<name>[A-Za-z_]\w*)|(?P<symbol>[-+*/()\[\]>]))"
)
_CLOSING = {"(": ")", "[": "]"}
_BINARY_OPS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", ">": "greater"}
_MINUS_ONE = "const_m1"


def compile_expression(
    text: str, variables: Mapping[str, str] | None = None, *, first_step: int = 0
) -> tuple[list[Step], str]:
    """Compile one expression into FinQA steps.

    Args:
        text: e.g. ``"(44.1-56.7)/56.7"``, ``"-5,637-(-3,990)"``, ``"x0 / 25.14"``.
        variables: what each name stands for, as a program argument (``{"x0": "#0"}``).
        first_step: the index the first emitted step will have in the whole program, so
            that references (``#N``) point at the right steps when programs are joined.

    Returns:
        ``(steps, result)``: the emitted steps and the argument holding the value, which
        is ``#N`` of the last step, or the operand itself when there is no operation
        (``"1234"`` compiles to no steps and ``"1234"``).

    Raises:
        VfmError: the text is not an arithmetic expression of this grammar.
    """
    parser = _Parser(text, _tokens(text), dict(variables or {}), first_step)
    result = parser.comparison()
    if parser.position != len(parser.tokens):
        raise parser.error(f"unexpected {parser.tokens[parser.position][1]!r}")
    return parser.steps, result


def _tokens(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs; kind is number, name or symbol."""
    tokens, position = [], 0
    text = text.replace("$", " ").rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _error(text, f"cannot read {text[position : position + 10].strip()!r}")
        kind = match.lastgroup or "symbol"
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _error(text: str, what: str) -> VfmError:
    """A VfmError about the expression ``text``."""
    return VfmError(
        f"not an arithmetic expression: {what}",
        where=text,
        fix="use numbers, + - * /, > and parentheses, e.g. '(5,829 - 5,735) / 5,735'",
    )


@dataclass
class _Parser:
    """A recursive-descent parser that emits a step for every operation it reduces."""

    text: str
    tokens: list[tuple[str, str]]
    variables: dict[str, str]
    first_step: int
    position: int = 0
    steps: list[Step] = field(default_factory=list)

    def comparison(self) -> str:
        left = self.sum()
        if self._take(">"):
            left = self._emit(">", left, self.sum())
        return left

    def sum(self) -> str:
        left = self.product()
        while (symbol := self._take("+", "-")) is not None:
            left = self._emit(symbol, left, self.product())
        return left

    def product(self) -> str:
        left = self.unary()
        while (symbol := self._take("*", "/")) is not None:
            left = self._emit(symbol, left, self.unary())
        return left

    def unary(self) -> str:
        if self._take("+") is not None:
            return self.unary()
        if self._take("-") is not None:
            return self._negate(self.unary())
        return self.atom()

    def atom(self) -> str:
        if self.position >= len(self.tokens):
            raise self.error("it ends too early")
        kind, token = self.tokens[self.position]
        self.position += 1
        if kind == "number":
            return token.replace("$", "").replace(",", "").replace(" ", "")
        if kind == "name":
            if token not in self.variables:
                raise self.error(f"{token!r} is not defined")
            return self.variables[token]
        if token in _CLOSING:
            if self._lone_number_inside(token):
                negative = self._negate(self.atom())
                self._take(_CLOSING[token])
                return negative
            inner = self.comparison()
            if self._take(_CLOSING[token]) is None:
                raise self.error(f"a {token!r} is never closed")
            return inner
        raise self.error(f"unexpected {token!r}")

    def error(self, what: str) -> VfmError:
        return _error(self.text, what)

    def _take(self, *symbols: str) -> str | None:
        """Consume the next token when it is one of ``symbols``."""
        if self.position < len(self.tokens) and self.tokens[self.position] in {("symbol", s) for s in symbols}:
            self.position += 1
            return self.tokens[self.position - 1][1]
        return None

    def _lone_number_inside(self, opening: str) -> bool:
        """Whether the group just opened holds one number only: ``(71)`` is -71."""
        ahead = self.tokens[self.position : self.position + 2]
        return len(ahead) == 2 and ahead[0][0] == "number" and ahead[1] == ("symbol", _CLOSING[opening])

    def _emit(self, symbol: str, left: str, right: str) -> str:
        """Append ``op(left, right)`` and return its reference."""
        self.steps.append(Step(_BINARY_OPS[symbol], (left, right)))
        return f"#{self.first_step + len(self.steps) - 1}"

    def _negate(self, operand: str) -> str:
        """``-x``: a literal changes sign; a result is multiplied by -1."""
        if operand.startswith(("#", "const_")):
            self.steps.append(Step("multiply", (operand, _MINUS_ONE)))
            return f"#{self.first_step + len(self.steps) - 1}"
        return operand[1:] if operand.startswith("-") else f"-{operand}"
