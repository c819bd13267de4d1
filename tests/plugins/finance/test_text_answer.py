"""The text answerer: questions whose answer is a phrase of the report get the sentence holding
it; questions that want a number or a cell stay with the program generator; its file."""

from __future__ import annotations

import json

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.answers.text_answer import TextAnswerer, answer_is_text, best_sentence, fit_text_answerer
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.decode import document_units
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever

ITEMS = (
    "revenue",
    "gross margin",
    "operating costs",
    "freight expense",
    "service income",
    "royalty income",
    "interest cost",
    "lease expense",
    "tax expense",
    "software sales",
)
REASONS = (
    "higher volumes in Europe",
    "the sale of the retail business",
    "new customer contracts",
    "lower fuel prices",
    "a stronger dollar",
    "the closure of two plants",
)


def _text_record(index: int) -> QARecord:
    """A TAT-QA-style record: a table of amounts, and paragraphs of which one gives a reason."""
    item, reason = ITEMS[index % len(ITEMS)], REASONS[index % len(REASONS)]
    other = ITEMS[(index + 3) % len(ITEMS)]
    table = [
        ["", "2019", "2018"],
        [item.capitalize(), f"{1000 + index:,}", f"{900 + index:,}"],
        [other.capitalize(), "12", "15"],
    ]
    pre = [
        "The table below shows amounts for the last two years. All amounts are in thousands.",
        f"Management expects the trend to continue. {item.capitalize()} changed in 2019 due to {reason}.",
    ]
    question = (
        "Why did {i} change in 2019?",
        "What was the reason for the change in {i}?",
        "What caused the change in {i} in 2019?",
    )[index % 3].format(i=item)
    return QARecord(
        id=f"t{index}",
        pre_text=pre,
        table=table,
        post_text=[],
        question=question,
        answer=f"due to {reason}",
        answer_type="span",
        source="tatqa",
        answer_spans=[f"due to {reason}"],
    )


@pytest.fixture(scope="module")
def fitted():
    numbers = generate(160, seed=4)
    retriever = EvidenceRetriever().fit(numbers)
    answerer, report = fit_text_answerer([_text_record(i) for i in range(40)] + numbers, retriever)
    assert answerer is not None and report["kept"] and report["text_answers"] == 40
    return answerer, retriever


def _ask(answerer, retriever, record):
    units, rows = document_units(record.table, [*record.pre_text, *record.post_text])
    ranking = retriever.score_units(record.question, units, rows, len(record.pre_text))
    return answerer.answer(record.question, record.table, units, ranking)


def test_a_text_question_gets_the_sentence_holding_its_answer(fitted):
    answerer, retriever = fitted
    for index in range(100, 106):
        record = _text_record(index)
        found = _ask(answerer, retriever, record)
        assert found is not None and record.answer_spans[0] in found.sentence, found
        assert found.unit == "text_1" and found.probability >= 0.7


def test_number_questions_stay_with_the_generator(fitted):
    answerer, retriever = fitted
    taken = sum(_ask(answerer, retriever, record) is not None for record in generate(40, seed=77))
    assert taken <= 1, f"{taken} of 40 number questions answered with a sentence"


def test_answer_is_text_needs_a_span_of_the_text_that_is_not_a_cell():
    assert answer_is_text(_text_record(1))
    assert not answer_is_text(generate(1, seed=1)[0])
    cell = QARecord(
        id="c",
        pre_text=["Revenue was 1,001 in 2019."],
        table=[["", "2019"], ["Revenue", "1,001"]],
        post_text=[],
        question="What was revenue in 2019?",
        answer="1,001",
        answer_type="span",
        source="tatqa",
        answer_spans=["1,001"],
    )
    assert not answer_is_text(cell)


def test_the_best_sentence_shares_most_of_the_question():
    units = {"text_0": "Costs rose. Revenue grew because of new stores. Margins held.", "table_0": "x"}
    sentence, unit, share = best_sentence("why did revenue grow ?", units, [("table_0", 0.9), ("text_0", 0.5)])
    assert (sentence, unit) == ("Revenue grew because of new stores.", "text_0") and share == pytest.approx(1 / 3)
    assert best_sentence("why?", {"table_0": "x"}, [("table_0", 1.0)]) is None


def test_too_few_text_answers_fit_nothing():
    numbers = generate(30, seed=4)
    answerer, report = fit_text_answerer(numbers + [_text_record(0)], EvidenceRetriever().fit(numbers))
    assert answerer is None and "fewer than" in report["why"]


def test_the_file_round_trips_and_a_damaged_one_is_refused(fitted, tmp_path):
    answerer, retriever = fitted
    path = answerer.save(tmp_path / "text_answer.json")
    record = _text_record(200)
    assert _ask(TextAnswerer.load(path), retriever, record) == _ask(answerer, retriever, record)
    data = json.loads(path.read_text())
    data["vocabulary"] = data["vocabulary"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(VfmError, match="do not fit"):
        TextAnswerer.load(path)
    path.write_text(json.dumps(data | {"cues": []}))
    with pytest.raises(VfmError, match="another version"):
        TextAnswerer.load(path)
