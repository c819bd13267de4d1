"""Synthetic financial statements with questions, gold programs and answers: the finance
plugin's embedded default dataset.

Each record is one company's statement (income statement, balance sheet or cash-flow
statement) over 2 to 4 fiscal years, laid out as FinQA lays out tables: a header row with
the scale (``( in millions )``) and the years, newest first, then one row per line item,
with ``$`` on the first and total rows, thousands commas, and negatives in parentheses.
The numbers are internally consistent: gross profit = revenue - cost of revenue, operating
income = gross profit - operating expenses, total equity = total assets - total
liabilities, net change in cash = operating + investing + financing cash flows.

Sentences before and after the table mention some of the table's numbers, and state two
facts the table does not hold (so a question's evidence is sometimes the table, sometimes
the text, sometimes both). One question per record, of one of :data:`QUESTION_TYPES`,
each with several phrasings; its gold program is in the FinQA language and the answer is
what :func:`execute` gives for it.

``generate(n, seed=s)[i]`` depends only on ``(s, i)``: records can be generated in any
order, in parallel, or one at a time with :func:`generate_record`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.language.executor import execute

QUESTION_TYPES = (
    "change",
    "percentage change",
    "ratio",
    "average",
    "sum",
    "comparison",
    "growth rate",
    "extreme",
    "projection",
)
"""The kinds of question asked; one is drawn per record."""

STATEMENTS = ("income statement", "balance sheet", "cash flow statement")
"""The kinds of statement drawn."""

_T = TypeVar("_T")

_NAMES = (
    "northwind",
    "apex",
    "bluestone",
    "cedar ridge",
    "harborview",
    "ironwood",
    "lakeshore",
    "meridian",
    "northstar",
    "pinecrest",
    "redwood",
    "silverline",
    "summit",
    "tidewater",
    "westfield",
    "crescent",
)
_SUFFIXES = ("holdings", "industries", "corporation", "group", "technologies", "systems", "brands", "energy")
_INDUSTRIES = (
    "industrial equipment",
    "specialty retail",
    "software",
    "consumer products",
    "logistics",
    "medical devices",
    "semiconductor",
    "food distribution",
)


@dataclass(frozen=True)
class _Line:
    """A line item.

    Attributes:
        name: the row name, as in FinQA (lower case).
        values: one value per year, newest first, in the statement's scale.
        total: whether it is a total or the first line (shown with ``$``).
    """

    name: str
    values: tuple[int, ...]
    total: bool = False

    @property
    def positive(self) -> bool:
        """Whether it is positive every year, so it can be a divisor or a growth base."""
        return all(value > 0 for value in self.values)


@dataclass(frozen=True)
class _Fact:
    """A number stated only in the text, for the two newest years.

    Attributes:
        name: what it is, e.g. ``dividends declared``.
        values: (newest year, year before).
        sentence: the index of its sentence in ``pre_text + post_text``.
    """

    name: str
    values: tuple[int, int]
    sentence: int


@dataclass(frozen=True)
class _Document:
    """One company's statement, as the question builders see it."""

    years: tuple[int, ...]
    scale: str
    lines: tuple[_Line, ...]
    facts: tuple[_Fact, ...]
    ratios: tuple[tuple[str, str], ...]

    def line(self, name: str) -> _Line:
        """The line item called ``name``."""
        return next(line for line in self.lines if line.name == name)

    def row_id(self, name: str) -> str:
        """The FinQA evidence id of a line's row (the header is ``table_0``)."""
        return f"table_{1 + [line.name for line in self.lines].index(name)}"


_Question = tuple[str, str, list[str]]
"""(question, program, evidence ids)."""

_Statement = tuple[list[_Line], list[tuple[str, str]]]
"""A statement's line items, and the (numerator, denominator) pairs worth asking about."""


def generate(n: int, *, seed: int = 0) -> list[QARecord]:
    """``n`` synthetic records; record ``i`` depends only on ``(seed, i)``.

    Raises:
        VfmError: ``n`` or ``seed`` is negative.
    """
    if n < 0:
        raise VfmError(f"cannot generate {n} records", where="synthetic finance data", fix="pass n >= 0")
    return [generate_record(index, seed=seed) for index in range(n)]


def generate_record(index: int, *, seed: int = 0) -> QARecord:
    """Record ``index`` of the synthetic dataset drawn with ``seed``.

    Raises:
        VfmError: ``index`` or ``seed`` is negative.
    """
    if index < 0 or seed < 0:
        raise VfmError(
            f"seed and index must be >= 0, got seed={seed}, index={index}",
            where="synthetic finance data",
            fix="pass non-negative integers",
        )
    rng = np.random.default_rng([seed, index])
    document, pre_text, post_text = _document(rng)
    kind = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
    question, program, evidence = _BUILDERS[kind](rng, document)
    table = _table(document)
    answer = execute(program, table)
    return QARecord(
        id=f"synthetic-{seed}-{index}",
        pre_text=pre_text,
        table=table,
        post_text=post_text,
        question=question,
        answer=answer,
        program=program,
        gold_evidence=evidence,
        answer_type="comparison" if isinstance(answer, str) else "arithmetic",
        source="synthetic",
    )


LOOKUP_TYPES = ("cell", "cells", "year")
"""The kinds of question answered by reading the table (:func:`generate_lookups`)."""


def generate_lookups(n: int, *, seed: int = 0) -> list[QARecord]:
    """``n`` synthetic questions answered by table cells, not programs (TAT-QA's ``span`` and
    ``multi-span``): a line's value in a year, its values in two years, or the year it was
    higher or lower in. Record ``i`` depends only on ``(seed, i)``; the documents are drawn as
    :func:`generate` draws them.

    Raises:
        VfmError: ``n`` or ``seed`` is negative.
    """
    if n < 0 or seed < 0:
        raise VfmError(
            f"cannot generate {n} records with seed {seed}",
            where="synthetic finance data",
            fix="pass n >= 0 and seed >= 0",
        )
    return [_lookup_record(index, seed) for index in range(n)]


def _lookup_record(index: int, seed: int) -> QARecord:
    rng = np.random.default_rng([seed, index, 1])
    document, pre_text, post_text = _document(rng)
    table = _table(document)
    row = int(rng.integers(1, len(table)))
    name, values = table[row][0], document.lines[row - 1].values
    kind = LOOKUP_TYPES[int(rng.integers(len(LOOKUP_TYPES)))]
    if kind == "year":
        higher = bool(rng.integers(2))
        column = 1 + (int(np.argmax(values)) if higher else int(np.argmin(values)))
        phrasing = _pick(rng, ("in which year was {n} {w} ?", "which year had the {s} {n} ?"))
        question = phrasing.format(n=name, w="higher" if higher else "lower", s="highest" if higher else "lowest")
        spans, scale = [table[0][column]], ""
    else:
        count = 1 if kind == "cell" else 2
        chosen = sorted(int(c) for c in rng.choice(range(1, len(table[0])), size=count, replace=False))
        years = [table[0][c] for c in chosen]
        if count == 1:
            phrasing = _pick(
                rng,
                (
                    "what was the {n} in {y} ?",
                    "what is the {n} for {y} ?",
                    "how much was {n} in {y} ?",
                    "what was {n} in {y} ?",
                    "what is the value of {n} in {y} ?",
                ),
            )
        else:
            phrasing = _pick(
                rng, ("what was the {n} in {y} and {z} respectively ?", "what were the {n} in {y} and {z} ?")
            )
        question = phrasing.format(n=name, y=years[0], z=years[-1])
        spans, scale = [table[row][c] for c in chosen], document.scale
    return QARecord(
        id=f"synthetic-lookup-{seed}-{index}",
        pre_text=pre_text,
        table=table,
        post_text=post_text,
        question=question,
        answer=spans[0],
        gold_evidence=[f"table_{row}"],
        scale=scale,
        answer_type="span" if len(spans) == 1 else "multi-span",
        source="synthetic",
        answer_spans=spans,
    )


def _document(rng: np.random.Generator) -> tuple[_Document, list[str], list[str]]:
    """A company's statement with its surrounding sentences."""
    company = f"{_pick(rng, _NAMES)} {_pick(rng, _SUFFIXES)}"
    newest = int(rng.integers(2012, 2025))
    years = tuple(newest - k for k in range(int(rng.integers(2, 5))))
    scale = _pick(rng, ("million", "thousand"))
    revenue = _revenue(rng, len(years), 1_000.0 if scale == "million" else 1_000_000.0)
    statement = _pick(rng, STATEMENTS)
    lines, ratios = _STATEMENTS[statement](rng, revenue)
    pre_text = [
        f"{company} is a {_pick(rng, _INDUSTRIES)} company .",
        f"the following table presents the consolidated {statement} for the years ended december 31 , "
        f"{_years_text(years)} ( in {scale}s ) .",
        _mention(lines[0], years, scale),
    ]
    facts_values = [_scaled(rng, revenue[:2], 0.01, 0.05), _scaled(rng, revenue[:2], 0.002, 0.01)]
    post_text = [
        _mention(_pick(rng, [line for line in lines[1:] if line.positive] or [lines[0]]), years, scale),
        f"dividends declared were $ {facts_values[0][0]:,} {scale} in {years[0]} and "
        f"$ {facts_values[0][1]:,} {scale} in {years[1]} .",
        f"research and development tax credits were $ {facts_values[1][0]:,} {scale} in {years[0]} , "
        f"compared with $ {facts_values[1][1]:,} {scale} in {years[1]} .",
    ]
    first_fact = len(pre_text) + 1
    facts = (
        _Fact("dividends declared", facts_values[0], first_fact),
        _Fact("research and development tax credits", facts_values[1], first_fact + 1),
    )
    document = _Document(years, scale, tuple(lines), facts, tuple(ratios))
    return document, pre_text, post_text


def _revenue(rng: np.random.Generator, n_years: int, base: float) -> np.ndarray:
    """Revenue per year, newest first, growing -8% to +20% a year from a random base."""
    growth = 1.0 + rng.uniform(-0.08, 0.20, size=n_years - 1)
    oldest_first = base * rng.uniform(0.5, 50.0) * np.concatenate([[1.0], np.cumprod(growth)])
    return oldest_first[::-1]


def _scaled(rng: np.random.Generator, base: np.ndarray, low: float, high: float) -> tuple[int, ...]:
    """A line of ``base`` times a share drawn in [low, high) once, jittered a little per year."""
    share = rng.uniform(low, high) * rng.uniform(0.95, 1.05, size=len(base))
    return tuple(max(1, int(round(value))) for value in base * share)


def _minus(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Year-by-year difference."""
    return tuple(x - y for x, y in zip(a, b, strict=True))


def _plus(*lines: tuple[int, ...]) -> tuple[int, ...]:
    """Year-by-year sum."""
    return tuple(int(sum(values)) for values in zip(*lines, strict=True))


def _negated(values: tuple[int, ...]) -> tuple[int, ...]:
    """Outflows."""
    return tuple(-value for value in values)


def _income_statement(rng: np.random.Generator, revenue: np.ndarray) -> _Statement:
    """Revenue down to net income; net income can be a loss."""
    sales = tuple(int(round(value)) for value in revenue)
    cost = _scaled(rng, revenue, 0.35, 0.75)
    research, selling = _scaled(rng, revenue, 0.03, 0.15), _scaled(rng, revenue, 0.08, 0.25)
    gross = _minus(sales, cost)
    operating = _minus(gross, _plus(research, selling))
    interest = _scaled(rng, revenue, 0.002, 0.02)
    pretax = _minus(operating, interest)
    tax = tuple(int(round(max(value, 0) * rng.uniform(0.15, 0.30))) for value in pretax)
    lines = [
        _Line("revenue", sales, total=True),
        _Line("cost of revenue", cost),
        _Line("gross profit", gross, total=True),
        _Line("research and development", research),
        _Line("selling general and administrative", selling),
        _Line("total operating expenses", _plus(research, selling), total=True),
        _Line("operating income", operating, total=True),
        _Line("interest expense", interest),
        _Line("income before income taxes", pretax),
        _Line("provision for income taxes", tax),
        _Line("net income", _minus(pretax, tax), total=True),
    ]
    ratios = [
        ("gross profit", "revenue"),
        ("cost of revenue", "revenue"),
        ("research and development", "revenue"),
        ("operating income", "revenue"),
        ("net income", "revenue"),
        ("total operating expenses", "gross profit"),
    ]
    return lines, ratios


def _balance_sheet(rng: np.random.Generator, revenue: np.ndarray) -> _Statement:
    """Assets, liabilities and equity = assets - liabilities, sized from revenue."""
    cash, receivables, inventory = (
        _scaled(rng, revenue, low, high) for low, high in ((0.05, 0.3), (0.08, 0.2), (0.05, 0.25))
    )
    current = _plus(cash, receivables, inventory)
    property_, goodwill = _scaled(rng, revenue, 0.2, 0.8), _scaled(rng, revenue, 0.05, 0.5)
    assets = _plus(current, property_, goodwill)
    payables, accrued = _scaled(rng, revenue, 0.05, 0.15), _scaled(rng, revenue, 0.03, 0.1)
    current_liabilities = _plus(payables, accrued)
    debt = _scaled(rng, np.array(assets, dtype=float), 0.1, 0.3)  # equity stays above 4% of assets
    liabilities = _plus(current_liabilities, debt)
    lines = [
        _Line("cash and cash equivalents", cash, total=True),
        _Line("accounts receivable", receivables),
        _Line("inventories", inventory),
        _Line("total current assets", current, total=True),
        _Line("property and equipment net", property_),
        _Line("goodwill", goodwill),
        _Line("total assets", assets, total=True),
        _Line("accounts payable", payables),
        _Line("accrued liabilities", accrued),
        _Line("total current liabilities", current_liabilities, total=True),
        _Line("long-term debt", debt),
        _Line("total liabilities", liabilities, total=True),
        _Line("total shareholders equity", _minus(assets, liabilities), total=True),
    ]
    ratios = [
        ("total liabilities", "total assets"),
        ("total current assets", "total current liabilities"),
        ("long-term debt", "total assets"),
        ("cash and cash equivalents", "total current assets"),
        ("goodwill", "total assets"),
    ]
    return lines, ratios


def _cash_flow_statement(rng: np.random.Generator, revenue: np.ndarray) -> _Statement:
    """Operating, investing and financing cash flows and the net change in cash."""
    net_income, depreciation = _scaled(rng, revenue, 0.04, 0.15), _scaled(rng, revenue, 0.02, 0.08)
    working_capital = tuple(int(round(value * rng.uniform(-0.04, 0.03))) or 1 for value in revenue)
    operating = _plus(net_income, depreciation, working_capital)
    capex, acquisitions = _negated(_scaled(rng, revenue, 0.03, 0.1)), _negated(_scaled(rng, revenue, 0.0, 0.05))
    investing = _plus(capex, acquisitions)
    borrowings, repayments = _scaled(rng, revenue, 0.0, 0.08), _negated(_scaled(rng, revenue, 0.01, 0.08))
    dividends = _negated(_scaled(rng, revenue, 0.005, 0.03))
    financing = _plus(borrowings, repayments, dividends)
    lines = [
        _Line("net income", net_income, total=True),
        _Line("depreciation and amortization", depreciation),
        _Line("changes in working capital", working_capital),
        _Line("net cash provided by operating activities", operating, total=True),
        _Line("capital expenditures", capex),
        _Line("acquisitions net of cash acquired", acquisitions),
        _Line("net cash used in investing activities", investing, total=True),
        _Line("proceeds from borrowings", borrowings),
        _Line("repayments of debt", repayments),
        _Line("dividends paid", dividends),
        _Line("net cash provided by financing activities", financing, total=True),
        _Line("net change in cash", _plus(operating, investing, financing), total=True),
    ]
    ratios = [
        ("net income", "net cash provided by operating activities"),
        ("depreciation and amortization", "net income"),
        ("proceeds from borrowings", "net income"),
    ]
    return lines, ratios


_STATEMENTS: dict[str, Callable[[np.random.Generator, np.ndarray], _Statement]] = {
    "income statement": _income_statement,
    "balance sheet": _balance_sheet,
    "cash flow statement": _cash_flow_statement,
}


def _table(document: _Document) -> list[list[str]]:
    """FinQA-style rows: the header, then one row per line item."""
    header = [f"( in {document.scale}s )", *map(str, document.years)]
    return [header, *([line.name, *(_money(value, line.total) for value in line.values)] for line in document.lines)]


def _money(value: int, dollar: bool) -> str:
    """``$ 1,234``, ``1,234`` or ``(1,234)``."""
    text = f"({-value:,})" if value < 0 else f"{value:,}"
    return f"$ {text}" if dollar else text


def _mention(line: _Line, years: tuple[int, ...], scale: str) -> str:
    """A sentence stating a line's two newest values."""
    direction = "increased" if line.values[0] > line.values[1] else "decreased"
    return (
        f"{line.name} {direction} to $ {_money(line.values[0], False)} {scale} in {years[0]} from "
        f"$ {_money(line.values[1], False)} {scale} in {years[1]} ."
    )


def _years_text(years: tuple[int, ...]) -> str:
    """``2019 , 2018 and 2017``."""
    return " , ".join(map(str, years[:-1])) + f" and {years[-1]}"


def _pick(rng: np.random.Generator, options: Sequence[_T]) -> _T:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _two_years(rng: np.random.Generator, years: tuple[int, ...]) -> tuple[int, int]:
    """Indexes (newer, older) of two distinct years."""
    newer, older = sorted(rng.choice(len(years), size=2, replace=False))
    return int(newer), int(older)


class _Series(NamedTuple):
    """Values over years of a line item (evidence: its row) or a text fact (its sentence)."""

    name: str
    values: tuple[int, ...]
    evidence: list[str]
    years: tuple[int, ...]


def _series(rng: np.random.Generator, document: _Document, *, positive: bool = False) -> _Series:
    """A text fact 30% of the time, else a line item (one positive every year, if asked)."""
    if rng.random() < 0.3:
        fact = _pick(rng, document.facts)
        return _Series(fact.name, fact.values, [f"text_{fact.sentence}"], document.years[:2])
    line = _pick(rng, [line for line in document.lines if line.positive or not positive])
    return _Series(line.name, line.values, [document.row_id(line.name)], document.years)


def _change(rng: np.random.Generator, document: _Document) -> _Question:
    """``subtract(new, old)``."""
    name, values, evidence, years = _series(rng, document)
    new, old = _two_years(rng, years)
    phrasing = _pick(
        rng,
        (
            "what was the change in {n} from {o} to {y} ?",
            "by how much did {n} change between {o} and {y} ?",
            "what is the net change in {n} from {o} to {y} ( in {s}s ) ?",
        ),
    )
    question = phrasing.format(n=name, o=years[old], y=years[new], s=document.scale)
    return question, f"subtract({values[new]}, {values[old]})", evidence


def _percentage_change(rng: np.random.Generator, document: _Document) -> _Question:
    """``subtract(new, old), divide(#0, old)``: a fraction, as FinQA answers percentages."""
    name, values, evidence, years = _series(rng, document, positive=True)
    new, old = _two_years(rng, years)
    phrasing = _pick(
        rng,
        (
            "what was the percentage change in {n} from {o} to {y} ?",
            "by what percent did {n} change from {o} to {y} ?",
            "what is the percent change in {n} between {o} and {y} ?",
        ),
    )
    question = phrasing.format(n=name, o=years[old], y=years[new])
    program = f"subtract({values[new]}, {values[old]}), divide(#0, {values[old]})"
    return question, program, evidence


def _growth_rate(rng: np.random.Generator, document: _Document) -> _Question:
    """The compound annual growth rate over 3 or 4 years, or the one-year rate over 2."""
    if len(document.years) < 3:
        name, values, evidence, years = _series(rng, document, positive=True)
        phrasing = _pick(rng, ("what was the growth rate of {n} in {y} ?", "what was the {y} growth rate in {n} ?"))
        program = f"subtract({values[0]}, {values[1]}), divide(#0, {values[1]})"
        return phrasing.format(n=name, y=years[0]), program, evidence
    line = _pick(rng, [line for line in document.lines if line.positive])
    span = len(document.years) - 1
    phrasing = _pick(
        rng,
        (
            "what was the compound annual growth rate of {n} from {o} to {y} ?",
            "what is the cagr of {n} between {o} and {y} ?",
        ),
    )
    question = phrasing.format(n=line.name, o=document.years[-1], y=document.years[0])
    program = (
        f"divide({line.values[0]}, {line.values[-1]}), divide(const_1, const_{span}), "
        f"exp(#0, #1), subtract(#2, const_1)"
    )
    return question, program, [document.row_id(line.name)]


def _ratio(rng: np.random.Generator, document: _Document) -> _Question:
    """``divide(a, b)`` of two line items, or of a text fact and the first line item."""
    if rng.random() < 0.3:
        fact, base = _pick(rng, document.facts), document.lines[0]
        year = int(rng.integers(2))
        top, bottom = (fact.name, fact.values[year]), (base.name, base.values[year])
        evidence = [f"text_{fact.sentence}", document.row_id(base.name)]
    else:
        numerator, denominator = _pick(rng, document.ratios)
        year = int(rng.integers(len(document.years)))
        top = (numerator, document.line(numerator).values[year])
        bottom = (denominator, document.line(denominator).values[year])
        evidence = [document.row_id(numerator), document.row_id(denominator)]
    phrasing = _pick(
        rng,
        (
            "what was the ratio of {a} to {b} in {y} ?",
            "what portion of {b} did {a} represent in {y} ?",
            "in {y} , what was {a} as a percentage of {b} ?",
        ),
    )
    question = phrasing.format(a=top[0], b=bottom[0], y=document.years[year])
    return question, f"divide({top[1]}, {bottom[1]})", evidence


def _average(rng: np.random.Generator, document: _Document) -> _Question:
    """``table_average`` of a row, or the mean of a text fact's two values."""
    if rng.random() < 0.3:
        fact = _pick(rng, document.facts)
        question = f"what was the average {fact.name} in {document.years[1]} and {document.years[0]} ?"
        program = f"add({fact.values[0]}, {fact.values[1]}), divide(#0, const_2)"
        return question, program, [f"text_{fact.sentence}"]
    line = _pick(rng, document.lines)
    phrasing = _pick(
        rng,
        (
            "what was the average {n} from {o} to {y} ?",
            "what is the average annual {n} over the years shown ?",
            "on average , what was {n} per year between {o} and {y} ?",
        ),
    )
    question = phrasing.format(n=line.name, o=document.years[-1], y=document.years[0])
    return question, f"table_average({line.name}, none)", [document.row_id(line.name)]


def _sum(rng: np.random.Generator, document: _Document) -> _Question:
    """``table_sum`` of a row, or ``add`` of two line items in one year."""
    if rng.random() < 0.5:
        line = _pick(rng, document.lines)
        phrasing = _pick(
            rng, ("what was the total {n} over the years shown ?", "what is the sum of {n} from {o} to {y} ?")
        )
        question = phrasing.format(n=line.name, o=document.years[-1], y=document.years[0])
        return question, f"table_sum({line.name}, none)", [document.row_id(line.name)]
    first, second = (document.lines[int(i)] for i in rng.choice(len(document.lines), size=2, replace=False))
    year = int(rng.integers(len(document.years)))
    phrasing = _pick(rng, ("what was the combined {a} and {b} in {y} ?", "what is the sum of {a} and {b} in {y} ?"))
    question = phrasing.format(a=first.name, b=second.name, y=document.years[year])
    program = f"add({first.values[year]}, {second.values[year]})"
    return question, program, [document.row_id(first.name), document.row_id(second.name)]


def _comparison(rng: np.random.Generator, document: _Document) -> _Question:
    """``greater`` of one series in two years, or of two line items in one year."""
    if rng.random() < 0.5:
        name, values, evidence, years = _series(rng, document)
        new, old = _two_years(rng, years)
        phrasing = _pick(rng, ("was {n} higher in {y} than in {o} ?", "did {n} increase from {o} to {y} ?"))
        question = phrasing.format(n=name, y=years[new], o=years[old])
        return question, f"greater({values[new]}, {values[old]})", evidence
    first, second = (document.lines[int(i)] for i in rng.choice(len(document.lines), size=2, replace=False))
    year = int(rng.integers(len(document.years)))
    phrasing = _pick(rng, ("did {a} exceed {b} in {y} ?", "in {y} , was {a} greater than {b} ?"))
    question = phrasing.format(a=first.name, b=second.name, y=document.years[year])
    program = f"greater({first.values[year]}, {second.values[year]})"
    return question, program, [document.row_id(first.name), document.row_id(second.name)]


def _extreme(rng: np.random.Generator, document: _Document) -> _Question:
    """``table_max`` or ``table_min`` of a row."""
    line = _pick(rng, document.lines)
    highest = rng.random() < 0.5
    phrasing = _pick(
        rng, ("what was the {w} {n} over the years shown ?", "what is the {w} annual {n} between {o} and {y} ?")
    )
    question = phrasing.format(
        w="highest" if highest else "lowest", n=line.name, o=document.years[-1], y=document.years[0]
    )
    return question, f"{'table_max' if highest else 'table_min'}({line.name}, none)", [document.row_id(line.name)]


def _projection(rng: np.random.Generator, document: _Document) -> _Question:
    """Next year's value at this year's growth: ``divide(new, old), multiply(new, #0)``."""
    name, values, evidence, years = _series(rng, document, positive=True)
    phrasing = _pick(
        rng,
        (
            "if {n} grows at the same rate as from {o} to {y} , what will it be in {z} ?",
            "assuming the {o} to {y} growth rate continues , what is the expected {n} in {z} ?",
        ),
    )
    question = phrasing.format(n=name, o=years[1], y=years[0], z=years[0] + 1)
    return question, f"divide({values[0]}, {values[1]}), multiply({values[0]}, #0)", evidence


_BUILDERS: dict[str, Callable[[np.random.Generator, _Document], _Question]] = {
    "change": _change,
    "percentage change": _percentage_change,
    "ratio": _ratio,
    "average": _average,
    "sum": _sum,
    "comparison": _comparison,
    "growth rate": _growth_rate,
    "extreme": _extreme,
    "projection": _projection,
}
