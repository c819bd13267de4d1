"""A table pasted as text (CSV, TSV, markdown or ``a | b | c`` lines) as rows of cells.

The demo and the runtime take tables the way people paste them; the executor and the
models take ``list[list[str]]`` with the row name in the first column, as FinQA does.

- Lines holding ``|`` are pipe rows: markdown (``| a | b |`` with a ``|---|---|`` rule,
  which is dropped) or ConvFinQA's ``a | b | c``.
- Otherwise lines holding a tab are TSV, and anything else is CSV; a CSV cell holding a
  comma (``"1,234"``) must be quoted.

Blank lines are skipped and cells are stripped (an empty last cell is kept). A table longer than :data:`MAX_TABLE_CHARS`
is refused rather than cut, because a cut table gives wrong answers without saying so.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from vfm.platform.errors import VfmError
from vfm.plugins.finance.language.numbers import finqa_cell_to_num, parse_number

MAX_TABLE_CHARS = 100_000
"""The longest table text accepted (characters); financial tables are a few thousand."""

_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
"""A markdown header rule such as ``|---|:---:|``."""


def parse_table(text: str, *, max_chars: int = MAX_TABLE_CHARS) -> list[list[str]]:
    """Read a pasted table.

    Args:
        text: the table as CSV, TSV, markdown or pipe-separated lines.
        max_chars: refuse longer text.

    Returns:
        The rows, each a list of the same number of cells.

    Raises:
        VfmError: the text is too long or empty, rows have different numbers of cells
            (the message names the first such row), there is only a header, or no cell holds a number.
    """
    if len(text) > max_chars:
        raise VfmError(
            f"the table is {len(text):,} characters; the limit is {max_chars:,}",
            where="table",
            fix="paste only the table the question is about",
        )
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise VfmError(
            "the table is empty", where="table", fix="paste a table with a header row, e.g. 'item, 2019, 2018'"
        )
    rows = (
        _pipe_rows([line.strip() for line in lines]) if any("|" in line for line in lines) else _delimited_rows(lines)
    )
    _check_rectangular(rows)
    if len(rows) < 2:
        raise VfmError(
            "the table has a header row and no data rows",
            where="table",
            fix="paste the rows below the header too, e.g. 'revenue, 120, 100'",
        )
    _check_has_numbers(rows)
    return rows


def _pipe_rows(lines: list[str]) -> list[list[str]]:
    """Markdown or ``a | b | c`` rows; markdown rules are dropped."""
    rows = []
    for line in lines:
        if _RULE.match(line):
            continue
        if line.startswith("|") and line.endswith("|") and len(line) > 1:
            line = line[1:-1]
        rows.append([cell.strip() for cell in line.split("|")])
    return rows


def _delimited_rows(lines: list[str]) -> list[list[str]]:
    """CSV rows, or TSV rows when the lines hold tabs."""
    delimiter = "\t" if any("\t" in line for line in lines) else ","
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter, skipinitialspace=True)
    return [[cell.strip() for cell in row] for row in reader]


def _check_rectangular(rows: list[list[str]]) -> None:
    """Every row has as many cells as the first (the header)."""
    width = len(rows[0])
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise VfmError(
                f"row {number} has {len(row)} cells but the header has {width}",
                where=f"table row {number}: {' | '.join(row)[:80]}",
                fix="give every row the same number of cells; quote CSV cells that hold "
                'commas ("1,234") or leave a cell empty rather than dropping it',
            )


def _check_has_numbers(rows: list[list[str]]) -> None:
    """At least one cell below the header and after the first column is a number, as
    people write numbers or as FinQA tables do (``59.2% ( 59.2 % )``)."""
    if not any(
        parse_number(cell) is not None or finqa_cell_to_num(cell) is not None for row in rows[1:] for cell in row[1:]
    ):
        raise VfmError(
            "the table has no numeric cells",
            where="table",
            fix="put row names in the first column and numbers in the others",
        )


_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")


def newest_year_first(table: Sequence[Sequence[str]]) -> tuple[list[list[str]], list[int]]:
    """The table with its year columns newest first, as FinQA's tables (and the models trained on
    them) read, and ``columns[j]``: the column of ``table`` that column ``j`` came from.

    Only a header whose every column after the first names exactly one year, in strictly ascending
    order (``item | 2018 | 2019 | 2020``), is reversed; any other table comes back as it is. A model
    that learned "the first year column is the latest" would otherwise compute changes backwards.
    """
    rows = [list(row) for row in table]
    width = len(rows[0]) if rows else 0
    years = [_YEAR.findall(cell) for cell in rows[0][1:]] if rows else []
    ascending = (
        width >= 3
        and all(len(found) == 1 for found in years)
        and all(int(a[0]) < int(b[0]) for a, b in zip(years, years[1:]))
    )
    if not ascending:
        return rows, list(range(width))
    columns = [0, *range(width - 1, 0, -1)]
    return [[row[c] for c in columns] for row in rows], columns
