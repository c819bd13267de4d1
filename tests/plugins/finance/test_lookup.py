"""The table lookup: which questions ask for table cells, which cells, several cells, the year a
value is highest or passes a bound; its file; and how evaluation scores its answers."""

from __future__ import annotations

import json

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.answers.lookup import (
    TableLookup,
    answer_cells,
    column_name,
    column_years,
    fit_table_lookup,
    header_rows,
    training_questions,
)
from vfm.plugins.finance.answers.scale import rule_scale
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate, generate_lookups
from vfm.plugins.finance.evaluation.evaluate import score_predictions
from vfm.plugins.finance.generation.decode import Prediction

# TAT-QA's layout: a title row, a row of years (with a scale in the first cell), values
TABLE = [
    ["", "Year Ended March 31,", "", ""],
    ["($ in millions)", "2019", "2018", "2017"],
    ["Share options outstanding", "6,209", "6,230", "8,681"],
    ["Unvested RSUs", "550", "33", "28"],
    ["Effective tax rate", "13.0%", "18.3%", "21.0%"],
]


@pytest.fixture(scope="module")
def lookup() -> TableLookup:
    fitted, report = fit_table_lookup(training_questions([], generate(300, seed=11), 300, seed=11))
    assert fitted is not None and report["kept"] and report["cell_answers"] == 300
    return fitted


def test_the_header_is_the_rows_before_the_first_named_row_with_a_value():
    assert header_rows(TABLE) == 2
    assert [y and y[0] for y in column_years(TABLE, 2)] == [None, "2019", "2018", "2017"]
    assert column_name(TABLE, 2) == "2018"
    merged = [
        ["", "2019", "", "2018", ""],
        ["", "Men", "Women", "Men", "Women"],
        ["Aged 65", "86.8", "88.9", "87.3", "89.3"],
    ]
    assert [y and y[0] for y in column_years(merged, header_rows(merged))] == [None, "2019", "2019", "2018", "2018"]


def test_answer_cells_are_found_only_when_every_span_is_a_cell():
    record = QARecord(
        id="q",
        pre_text=[],
        table=TABLE,
        post_text=[],
        question="q",
        answer="550",
        answer_type="multi-span",
        source="tatqa",
        answer_spans=["550", "33"],
    )
    assert answer_cells(record) == [(3, 1), (3, 2)]
    assert (
        answer_cells(
            QARecord(
                id="q",
                pre_text=[],
                table=TABLE,
                post_text=[],
                question="q",
                answer="x",
                answer_type="span",
                source="tatqa",
                answer_spans=["new customers"],
            )
        )
        is None
    )
    assert answer_cells(generate(1, seed=3)[0]) is None  # a program's answer


def test_questions_asking_for_cells_are_read_and_program_questions_are_left_to_the_generator(lookup):
    cells = generate_lookups(60, seed=99)
    right = sum(
        found is not None and list(found.spans) == r.answer_spans
        for r, found in zip(cells, (lookup.answer(r.question, r.table) for r in cells), strict=True)
    )
    routed = sum(lookup.answer(r.question, r.table) is not None for r in generate(60, seed=99))
    assert right >= 57, f"{right} of 60 cell questions answered"
    assert routed <= 2, f"{routed} of 60 program questions taken from the generator"


def test_several_cells_follow_the_years_asked(lookup):
    found = lookup.answer("What was the Unvested RSUs in 2019 and 2017 respectively?", TABLE)
    assert found is not None and found.cells == ((3, 1), (3, 3)) and found.spans == ("550", "28")


def test_which_year_questions_read_the_header(lookup):
    higher = lookup.answer("In which year was Unvested RSUs higher?", TABLE)
    lower = lookup.answer("In which year was Share options outstanding lowest?", TABLE)
    assert higher is not None and higher.spans == ("2019",) and higher.cells == ((1, 1),)
    assert higher.rows == (1, 3), "the header row and the row compared"
    assert lower is not None and lower.spans == ("2019",)
    bound = lookup.answer("In which years was Unvested RSUs less than 100?", TABLE)
    assert bound is not None and bound.spans == ("2018", "2017")


def test_how_many_years_counts_the_years_past_the_bound(lookup):
    found = lookup.answer("How many years did Unvested RSUs exceed 30?", TABLE)
    assert found is not None and found.count and found.spans == ("2",) and found.cells == ((1, 1), (1, 2))
    assert found.rows == (1, 3), "the header row and the row compared"
    times = lookup.answer("revenue in 2019 was how many times the revenue in 2018 ?", TABLE)
    assert times is None or not times.count


def test_a_table_without_cells_beyond_the_row_names_has_no_lookup_answer(lookup):
    assert lookup.answer("what was the revenue in 2019 ?", [["item"], ["revenue"]]) is None


def test_a_year_is_never_made_up(lookup):
    """A which-year question over a table whose header names no year, or whose values do not parse."""
    assert lookup.answer("in which year was revenue higher ?", [["item", "a", "b"], ["revenue", "5", "7"]]) is None
    assert (
        lookup.answer("in which year was revenue higher ?", [["", "2019", "2018"], ["revenue", "n/a", "-"]]) is None
    ), "no value to compare"
    listed = lookup.answer("which years does the table show ?", [["", "2019", "2018"], ["revenue", "n/a", "-"]])
    assert listed is None or listed.spans == ("2019", "2018")


def test_the_file_round_trips_and_a_damaged_one_is_refused(lookup, tmp_path):
    path = lookup.save(tmp_path / "lookup.json", note="test")
    loaded = TableLookup.load(path)
    for record in generate_lookups(10, seed=5):
        assert loaded.answer(record.question, record.table) == lookup.answer(record.question, record.table)
    data = json.loads(path.read_text())
    data["cell_scorer"]["weights"] = data["cell_scorer"]["weights"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(VfmError, match="do not fit its features"):
        TableLookup.load(path)
    path.write_text(json.dumps(data | {"format": "other"}))
    with pytest.raises(VfmError, match="another version"):
        TableLookup.load(path)
    path.write_text("{broken")
    with pytest.raises(VfmError, match="cannot read the table lookup"):
        TableLookup.load(path)


def test_too_few_cell_answers_fit_no_lookup():
    lookup, report = fit_table_lookup(generate(30, seed=1) + generate_lookups(3, seed=1))
    assert lookup is None and not report["kept"] and "fewer than" in report["why"]


def test_cell_answers_are_scored_as_tatqa_spans_in_the_cell_scale():
    record = QARecord(
        id="q",
        pre_text=["All amounts in thousands."],
        table=TABLE,
        post_text=[],
        question="What was the Unvested RSUs in 2019 and 2018?",
        answer="550",
        scale="million",
        answer_type="multi-span",
        source="tatqa",
        answer_spans=["550", "33"],
    )
    right = Prediction(
        None, ("550", "33"), 0.9, ("table_3",), (), (), cells=((3, 1), (3, 2)), scale="million", kind="lookup"
    )
    half = Prediction(None, "550", 0.9, ("table_3",), (), (), cells=((3, 1),), scale="million", kind="lookup")
    scores = score_predictions([right, half], [record, record])
    assert scores["tatqa"]["spans"]["count"] == 2 and scores["answered_by"] == {"program": 0, "lookup": 2, "text": 0}
    assert scores["tatqa"]["spans"]["exact_match"] == 0.5 and 0.5 < scores["tatqa"]["spans"]["f1"] < 1.0
    wrong_scale = Prediction(
        None, ("550", "33"), 0.9, ("table_3",), (), (), cells=((3, 1), (3, 2)), scale="thousand", kind="lookup"
    )
    assert score_predictions([wrong_scale], [record])["tatqa"]["spans"]["exact_match"] == 0.0
    texts = record.pre_text
    assert rule_scale(record.question, TABLE, texts, spans=["550"]) == "million"  # the table's "($ in millions)"
    assert rule_scale(record.question, TABLE, texts, spans=["2019"]) == ""
    assert rule_scale(record.question, TABLE, texts, spans=["13.0%"]) == "percent"
