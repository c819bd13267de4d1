"""Synthetic financial statements: determinism, consistency, and questions that execute."""

from __future__ import annotations

from collections import Counter

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import QUESTION_TYPES, generate, generate_record
from vfm.plugins.finance.language.executor import execute
from vfm.plugins.finance.language.numbers import finqa_cell_to_num
from vfm.plugins.finance.language.program import parse_program


@pytest.fixture(scope="module")
def records() -> list[QARecord]:
    return generate(240, seed=7)


def _row(record: QARecord, name: str) -> list[float]:
    row = next(row for row in record.table if row[0] == name)
    return [finqa_cell_to_num(cell) for cell in row[1:]]  # type: ignore[misc]


def test_record_i_depends_only_on_seed_and_i(records):
    assert generate(3, seed=7) == records[:3]
    assert generate_record(17, seed=7) == records[17]
    assert generate(3, seed=8) != records[:3]
    assert [r.id for r in records[:2]] == ["synthetic-7-0", "synthetic-7-1"]


def test_every_gold_program_gives_the_answer(records):
    for record in records:
        assert execute(record.program, record.table) == record.answer  # type: ignore[arg-type]
        assert record.source == "synthetic" and record.scale == ""
        assert record.answer_type == ("comparison" if record.answer in ("yes", "no") else "arithmetic")


def test_every_question_type_and_statement_appears(records):
    steps = Counter(step.op for r in records for step in parse_program(r.program))  # type: ignore[arg-type]
    assert set(steps) == {
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
    titles = Counter(r.pre_text[1].split(" consolidated ")[1].split(" for ")[0] for r in records)
    assert set(titles) == {"income statement", "balance sheet", "cash flow statement"}
    assert len(QUESTION_TYPES) == 9 and len({r.question.split(" ")[0] for r in records}) > 4
    assert len({r.question for r in records}) > 200


def test_tables_look_like_finqa_tables(records):
    for record in records:
        header = record.table[0]
        assert header[0] in ("( in millions )", "( in thousands )") and 3 <= len(header) <= 5
        assert [int(year) for year in header[1:]] == sorted(map(int, header[1:]), reverse=True)
        assert all(finqa_cell_to_num(cell) is not None for row in record.table[1:] for cell in row[1:])
    cells = [cell for r in records for row in r.table[1:] for cell in row[1:]]
    assert any(cell.startswith("$ ") for cell in cells) and any("(" in cell for cell in cells)
    assert any("," in cell for cell in cells)


def _years(record: QARecord, *names: str) -> list[tuple[float, ...]]:
    """The values of the named rows, year by year."""
    return list(zip(*(_row(record, name) for name in names), strict=True))


def test_statements_are_internally_consistent(records):
    for record in records:
        names = {row[0] for row in record.table}
        if "gross profit" in names:
            for rev, cost, gross, opex, operating in _years(
                record, "revenue", "cost of revenue", "gross profit", "total operating expenses", "operating income"
            ):
                assert gross == rev - cost and operating == gross - opex
        if "total assets" in names:
            for assets, liabilities, equity in _years(
                record, "total assets", "total liabilities", "total shareholders equity"
            ):
                assert equity == assets - liabilities and equity > 0
        if "net change in cash" in names:
            for op, inv, fin, change in _years(
                record,
                "net cash provided by operating activities",
                "net cash used in investing activities",
                "net cash provided by financing activities",
                "net change in cash",
            ):
                assert change == op + inv + fin


def test_evidence_is_sometimes_table_sometimes_text(records):
    kinds = Counter(tuple(sorted({e.split("_")[0] for e in r.gold_evidence})) for r in records)
    assert kinds[("table",)] and kinds[("text",)] and kinds[("table", "text")]
    for record in records:
        numbers = [
            f"{int(arg):,}"
            for step in parse_program(record.program)  # type: ignore[arg-type]
            for arg in step.args
            if arg.isdigit()
        ]
        for evidence in (e for e in record.gold_evidence if e.startswith("text_")):
            assert any(number in record.evidence()[evidence] for number in numbers)


def test_negative_sizes_are_refused():
    with pytest.raises(VfmError, match="cannot generate -1 records"):
        generate(-1)
    with pytest.raises(VfmError, match="must be >= 0"):
        generate_record(0, seed=-1)
    assert generate(0) == []
