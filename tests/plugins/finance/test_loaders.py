"""Loading FinQA, TAT-QA and ConvFinQA files (hand-written miniatures, and the real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.loaders import (
    detect_format,
    load_any,
    load_convfinqa,
    load_finqa,
    load_finqa_prompts,
    load_tatqa,
)
from vfm.plugins.finance.language.executor import execute

from .conftest import DATA_DIR, needs_data

FINQA = [
    {
        "id": "ABC/2019/page_1.pdf-1",
        "filename": "ABC/2019/page_1.pdf",
        "pre_text": ["sales grew .", "costs were flat ."],
        "table": [["", "2019", "2018"], ["net sales", "$ 5829", "$ 5735"]],
        "post_text": ["the company paid dividends ."],
        "qa": {
            "question": "what was the percent change in net sales?",
            "program": "subtract(5829, 5735), divide(#0, 5735)",
            "exe_ans": 0.01639,
            "answer": "1.6%",
            "gold_inds": {"table_1": "the net sales of 2019 is $ 5829 ;"},
        },
    },
    {
        "id": "ABC/2019/page_2.pdf-1",
        "pre_text": [],
        "table": [["", "2019"], ["a", "1"]],
        "post_text": [],
        "qa": {"question": "was a above 0?", "program": "greater(1, 0)", "exe_ans": "yes", "gold_inds": {}},
    },
]

TATQA = [
    {
        "table": {
            "uid": "t1",
            "table": [["", "2019", "2018"], ["Other", "44.1", "56.7"], ["Total sales", "$1,496.5", "$1,202.9"]],
        },
        "paragraphs": [
            {"uid": "p2", "order": 2, "text": "Sales in Other contract types represent cost plus."},
            {"uid": "p1", "order": 1, "text": "Substantially all of our contracts are fixed-price."},
        ],
        "questions": [
            {
                "uid": "q1",
                "order": 1,
                "question": "What is the percentage change in Other?",
                "answer": -22.22,
                "derivation": "(44.1-56.7)/56.7",
                "answer_type": "arithmetic",
                "answer_from": "table",
                "rel_paragraphs": [],
                "scale": "percent",
            },
            {
                "uid": "q2",
                "order": 2,
                "question": "What are the contract types?",
                "answer": ["fixed-price", "cost plus"],
                "derivation": "",
                "answer_type": "multi-span",
                "answer_from": "text",
                "rel_paragraphs": ["1", "2"],
                "scale": "",
            },
            {
                "uid": "q3",
                "order": 3,
                "question": "What is total sales in 2019?",
                "answer": ["$1,496.5"],
                "derivation": "",
                "answer_type": "span",
                "answer_from": "table-text",
                "rel_paragraphs": ["2"],
                "scale": "million",
            },
            {
                "uid": "q4",
                "order": 4,
                "question": "Sum of two values?",
                "answer": 92.4,
                "derivation": "60.3 million + 32,137 thousand",
                "answer_type": "arithmetic",
                "answer_from": "text",
                "rel_paragraphs": [],
                "scale": "million",
            },
            {
                "uid": "q5",
                "order": 5,
                "question": "How many years?",
                "answer": "2",
                "derivation": "2019##2018",
                "answer_type": "count",
                "answer_from": "table",
                "rel_paragraphs": [],
                "scale": "",
            },
        ],
    }
]

CONVFINQA = [
    {
        "id": "Single_MRO/2007/page_134.pdf-1",
        "questions": [
            "what was the price in 2007?",
            "and in 2005?",
            "what was the change?",
            "and how much is that change relative to 2005?",
        ],
        "programs": ["ans = 60.94", "ans = 25.14", "ans = 60.94 - 25.14", "x0 = 60.94 - 25.14; ans = x0 / 25.14"],
        "answer": 1.42403,
        "text": "stock options vest ratably . the price was $ 60.94 in 2007 . it was $ 25.14 in 2005 .",
        "table": "- | 2007 | 2006 | 2005\nweighted average exercise price per share | $ 60.94 | $ 37.84 | $ 25.14\n"
        "expected life in years | 5.0 | 5.1 | 5.5\n",
        "golden_text": "it was $ 25.14 in 2005 . ",
        "golden_table": "- | 2007 | 2006 | 2005\nweighted average exercise price per share | $ 60.94 | $ 37.84 | $ 25.14\n",
    },
    {
        "id": "Double_X/2010/page_1.pdf",
        "questions": ["was 5 above 7?"],
        "programs": ["ans = 5 > 7"],
        "answer": "no",
        "text": "",
        "table": "- | 2010\nitem | 5\n",
        "golden_text": "",
        "golden_table": "",
    },
]


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_load_finqa(tmp_path):
    records = load_finqa(_write(tmp_path, "finqa.json", FINQA))
    first, second = records
    assert (first.id, first.answer, first.answer_type, first.source) == (
        "ABC/2019/page_1.pdf-1",
        0.01639,
        "arithmetic",
        "finqa",
    )
    assert first.program == FINQA[0]["qa"]["program"] and first.gold_evidence == ["table_1"]
    assert first.post_text == ["the company paid dividends ."]
    assert (second.answer, second.answer_type) == ("yes", "comparison")


def test_load_tatqa(tmp_path):
    percent, spans, span, words, count = load_tatqa(_write(tmp_path, "tatqa.json", TATQA))
    assert percent.pre_text == [
        "Substantially all of our contracts are fixed-price.",
        "Sales in Other contract types represent cost plus.",
    ]
    assert percent.program == "subtract(44.1, 56.7), divide(#0, 56.7), multiply(#1, const_100)"
    assert execute(percent.program, percent.table) == -22.22222
    assert percent.gold_evidence == ["table_1"] and percent.scale == "percent"
    assert (spans.answer, spans.answer_spans, spans.program) == (
        "fixed-price; cost plus",
        ["fixed-price", "cost plus"],
        None,
    )
    assert spans.gold_evidence == ["text_0", "text_1"]
    assert span.gold_evidence == ["table_2", "text_1"] and span.answer == "$1,496.5"
    assert words.program is None and words.answer == 92.4  # scale words are not arithmetic
    assert (count.answer, count.answer_type) == ("2", "count")


def test_load_convfinqa(tmp_path):
    conversation, comparison = load_convfinqa(_write(tmp_path, "conv.json", CONVFINQA))
    assert conversation.question == "and how much is that change relative to 2005?"
    assert conversation.history == CONVFINQA[0]["questions"][:-1]
    assert conversation.program == "subtract(60.94, 25.14), divide(#0, 25.14)"
    assert execute(conversation.program, conversation.table) == conversation.answer
    assert conversation.table[1] == ["weighted average exercise price per share", "$ 60.94", "$ 37.84", "$ 25.14"]
    assert conversation.pre_text[2] == "it was $ 25.14 in 2005 ."
    assert conversation.gold_evidence == ["table_1", "text_2"]
    assert (comparison.program, comparison.answer, comparison.answer_type) == ("greater(5, 7)", "no", "comparison")


@pytest.mark.parametrize(("data", "name"), [(FINQA, "finqa"), (TATQA, "tatqa"), (CONVFINQA, "convfinqa")])
def test_load_any_recognises_each_format(tmp_path, data, name):
    assert detect_format(data) == name
    assert load_any(_write(tmp_path, f"{name}.json", data))[0].source == name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON: .* at line 1"),
        ('{"a": 1}', "expected a JSON list of records, found a dict"),
        ("[]", "the file holds no records"),
        ('[{"question": "q", "context": "c"}]', "unknown format: the first record has fields context, question"),
    ],
)
def test_load_any_explains_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VfmError, match=message) as err:
        load_any(path)
    assert str(path) in str(err.value)


def test_missing_file_and_missing_field(tmp_path):
    with pytest.raises(VfmError, match="file not found"):
        load_finqa(tmp_path / "nope.json")
    broken = [dict(FINQA[0], qa={"question": "q"})]
    with pytest.raises(VfmError, match=r"missing field 'exe_ans'.*record 0"):
        load_finqa(_write(tmp_path, "broken.json", broken))


def test_convfinqa_needs_a_program_per_question(tmp_path):
    with pytest.raises(VfmError, match="4 questions but 1 programs"):
        load_convfinqa(_write(tmp_path, "c.json", [dict(CONVFINQA[0], programs=["ans = 1"])]))


@needs_data("finqa/dev_sample200.original.json", "finqa/train_sample100.original.json")
def test_real_finqa_files_load():
    records = load_any(DATA_DIR / "finqa/dev_sample200.original.json") + load_any(
        DATA_DIR / "finqa/train_sample100.original.json"
    )
    assert len(records) == 300 and all(r.program and r.gold_evidence for r in records)


@needs_data("tatqa/tatqa_dataset_dev.json")
def test_real_tatqa_derivations_become_programs():
    records = load_any(DATA_DIR / "tatqa/tatqa_dataset_dev.json")
    arithmetic = [r for r in records if r.answer_type == "arithmetic"]
    assert len(records) == 1668 and len(arithmetic) == 718
    assert sum(r.program is not None for r in arithmetic) >= 717
    assert all(r.program is None for r in records if r.answer_type != "arithmetic")


@needs_data("convfinqa/convfinqa_dev.pot_format.json")
def test_real_convfinqa_programs_compile():
    records = load_any(DATA_DIR / "convfinqa/convfinqa_dev.pot_format.json")
    assert len(records) == 342 and all(r.program for r in records)
    assert sum(bool(r.gold_evidence) for r in records) == 342


def _prompt_line(question: str = "what was the change in net sales?", answer: str = "94.0") -> str:
    prompt = (
        "Please answer the given financial question based on the context.\nContext: sales grew . costs were "
        "flat .\n||2019|2018|\n|net sales|$ 5829|$ 5735|\nthe company paid dividends .\nQuestion: "
        f"{question}\nAnswer:"
    )
    return json.dumps(
        {"id": "finqa7", "conversations": [{"from": "human", "value": prompt}, {"from": "assistant", "value": answer}]}
    )


def test_finqa_prompts_load_into_records(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(_prompt_line() + "\n\n" + _prompt_line("was 2019 above 2018?", "yes") + "\n")
    first, second = load_finqa_prompts(path)
    assert first.id == "finqa7" and first.pre_text == ["sales grew .", "costs were flat ."]
    assert first.table == [["", "2019", "2018"], ["net sales", "$ 5829", "$ 5735"]]
    assert first.post_text == ["the company paid dividends ."] and first.question == "what was the change in net sales?"
    assert first.answer == 94.0 and first.program is None and first.gold_evidence == []
    assert second.answer == "yes" and second.answer_type == "comparison"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"id": 1}), "missing field 'conversations'"),
        (
            json.dumps(
                {
                    "conversations": [
                        {"from": "human", "value": "Question: why?\nAnswer:"},
                        {"from": "assistant", "value": "1"},
                    ]
                }
            ),
            "no 'Context:' with a table",
        ),
        (_prompt_line(answer="about five"), "neither a number nor yes/no"),
        (_prompt_line(answer="nan"), "neither a number nor yes/no"),
    ],
)
def test_bad_finqa_prompt_files_are_explained(tmp_path, line, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(VfmError, match=message):
        load_finqa_prompts(path)
    with pytest.raises(VfmError, match="file not found"):
        load_finqa_prompts(tmp_path / "missing.jsonl")


@needs_data("finqa/dev_all883.pixiu_prompt.jsonl", "finqa/dev_sample200.original.json")
def test_real_finqa_prompts_hold_the_dev_records():
    prompts = load_finqa_prompts(DATA_DIR / "finqa/dev_all883.pixiu_prompt.jsonl")
    assert len(prompts) == 883 and all(r.table and r.question for r in prompts)
    by_question = {(r.question.lower(), json.dumps(r.table)): r.answer for r in prompts}
    dev = load_finqa(DATA_DIR / "finqa/dev_sample200.original.json")
    found = [by_question.get((r.question.lower().strip(), json.dumps(r.table))) for r in dev]
    assert sum(answer == r.answer for answer, r in zip(found, dev, strict=True)) >= 195
