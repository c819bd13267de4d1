"""What the finance predictor reads from a user's question: numbers of any script, empty cells."""

from __future__ import annotations

from vfm.plugins.finance.predictor import ascii_digits, read_question


def test_digits_of_other_scripts_are_read_whole():
    assert ascii_digits("١٢٠٫٥ and ۳۴ and १२") == "120.5 and 34 and 12"
    question, table, pre_text, _, _ = read_question(
        {"question": "what was revenue in ٢٠٢٠?", "table": [["", "٢٠٢٠"], ["revenue", "١٢٠٫٥"]], "pre_text": "٣ units."}
    )
    assert question == "what was revenue in 2020?" and table[1] == ["revenue", "120.5"] and pre_text == ["3 units."]


def test_arabic_thousands_separators_do_not_split_pasted_cells():
    _, table, _, _, _ = read_question({"question": "what?", "table": "item,٢٠٢٠\nrevenue,١٬٢٣٤"})
    assert table[1] == ["revenue", "1234"]


def test_null_cells_are_empty_not_the_word_none():
    _, table, _, _, _ = read_question({"question": "what?", "table": [["", "2020", "2019"], ["revenue", 12, None]]})
    assert table[1] == ["revenue", "12", ""]
