"""The QARecord shape: validation and FinQA-style evidence ids."""

from __future__ import annotations

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord, row_to_text

TABLE = [["company", "payments volume ( billions )", "cards ( millions )"], ["american express", "637", "86"]]


def _record(**overrides: object) -> QARecord:
    fields: dict[str, object] = dict(
        id="r1",
        pre_text=["sales rose .", "costs fell ."],
        table=TABLE,
        post_text=["margins widened ."],
        question="q?",
        answer=1.0,
    )
    return QARecord(**(fields | overrides))  # type: ignore[arg-type]


def test_row_to_text_words_a_row_as_finqa_does():
    assert row_to_text(TABLE[0], TABLE[1]) == (
        "company the american express of payments volume ( billions ) is 637 ; "
        "the american express of cards ( millions ) is 86 ;"
    )
    assert row_to_text(["", "2019"], ["sales", "5"]) == "the sales of 2019 is 5 ;"


def test_evidence_ids_cover_rows_then_sentences():
    evidence = _record().evidence()
    assert list(evidence) == ["table_0", "table_1", "text_0", "text_1", "text_2"]
    assert evidence["text_2"] == "margins widened ."


def test_defaults_describe_a_synthetic_arithmetic_record():
    record = _record(gold_evidence=["table_1", "text_2"])
    assert (record.source, record.answer_type, record.scale, record.program) == ("synthetic", "arithmetic", "", None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source": "wiki"}, "source 'wiki' is not one of"),
        ({"scale": "dozen"}, "scale 'dozen' is not one of"),
        ({"answer_type": "essay"}, "answer_type 'essay' is not one of"),
        ({"gold_evidence": ["table_9", "text_3"]}, "table_9, text_3 is not a row or sentence"),
    ],
)
def test_invalid_fields_are_refused(overrides, message):
    with pytest.raises(VfmError, match=message):
        _record(**overrides)


def test_a_record_without_a_table_has_only_text_evidence():
    assert list(_record(table=[]).evidence()) == ["text_0", "text_1", "text_2"]
