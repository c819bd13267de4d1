"""Pasted tables: CSV, TSV, markdown and pipe rows, and the errors users see."""

from __future__ import annotations

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.table_text import MAX_TABLE_CHARS, newest_year_first, parse_table
from vfm.plugins.finance.language.executor import execute

EXPECTED = [["item", "2019", "2018"], ["revenue", "$1,234", "(56)"], ["costs", "10", ""]]


@pytest.mark.parametrize(
    "text",
    [
        'item,2019,2018\nrevenue,"$1,234",(56)\ncosts,10,\n',
        "item\t2019\t2018\nrevenue\t$1,234\t(56)\ncosts\t10\t\n",
        "| item | 2019 | 2018 |\n|---|---:|:---:|\n| revenue | $1,234 | (56) |\n| costs | 10 |  |\n",
        "item | 2019 | 2018\n\nrevenue | $1,234 | (56)\ncosts | 10 | \n",
    ],
)
def test_every_pasted_form_gives_the_same_rows(text):
    assert parse_table(text) == EXPECTED


def test_a_parsed_table_executes():
    table = parse_table("| item | 2019 | 2018 |\n|---|---|---|\n| revenue | $ 1,234 | $ (34) |")
    assert execute("table_sum(revenue, none)", table) == 1200.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the table is empty"),
        ("  \n \n", "the table is empty"),
        ("item,2019,2018\nrevenue,1,234,5\n", "row 2 has 4 cells but the header has 3"),
        ("| a | b |\n|---|---|\n| x | 1 |\n| y |\n", "row 3 has 1 cells but the header has 2"),
        ("item,2019\nrevenue,n/a\ncosts,-\n", "no numeric cells"),
    ],
)
def test_bad_tables_are_explained(text, message):
    with pytest.raises(VfmError, match=message) as err:
        parse_table(text)
    assert "fix:" in str(err.value)


def test_ragged_rows_suggest_quoting():
    with pytest.raises(VfmError, match="quote CSV cells that hold commas"):
        parse_table("item,2019\nrevenue,1,234\n")


def test_tables_over_the_cap_are_refused_not_cut():
    text = "item,2019\n" + "revenue,1\n" * (MAX_TABLE_CHARS // 10)
    with pytest.raises(VfmError, match=f"the limit is {MAX_TABLE_CHARS:,}"):
        parse_table(text)
    assert len(parse_table("item,2019\nrevenue,1\n" * 3, max_chars=100)) == 6


def test_ascending_year_columns_are_read_newest_first_and_mapped_back():
    table = [["item", "fiscal 2018", "2019", "2020 (a)"], ["revenue", "80", "100", "120"]]
    reordered, columns = newest_year_first(table)
    assert reordered == [["item", "2020 (a)", "2019", "fiscal 2018"], ["revenue", "120", "100", "80"]]
    assert [table[1][c] for c in columns] == reordered[1]


@pytest.mark.parametrize(
    "header",
    [
        ["item", "2020", "2019"],  # already newest first
        ["item", "2019"],  # one year: nothing to order
        ["item", "2018", "total"],  # not every column a year
        ["item", "2018-2019", "2020"],  # two years in one cell
    ],
)
def test_other_tables_are_left_as_they_are(header):
    table = [header, ["revenue", *["1"] * (len(header) - 1)]]
    assert newest_year_first(table) == (table, list(range(len(header))))
