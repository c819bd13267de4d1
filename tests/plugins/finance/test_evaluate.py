"""Scoring a model folder on FinQA- and TAT-QA-format files."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_vfm
from vfm.platform.errors import VfmError
from vfm.plugins.finance.answers.scale import rule_scale
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.evaluation.evaluate import evaluate_file, score_predictions
from vfm.plugins.finance.generation.decode import Prediction

from .conftest import finqa_item
from .test_decode import exported_model_folder

TATQA_CONTEXT = {
    "table": {
        "uid": "t1",
        "table": [["", "2019", "2018"], ["Revenue", "1,200", "1,000"], ["Cost of sales", "(700)", "(600)"]],
    },
    "paragraphs": [
        {"uid": "p1", "order": 1, "text": "Revenue grew because of new customers."},
        {"uid": "p2", "order": 2, "text": "All amounts are in thousands."},
    ],
    "questions": [
        {
            "uid": "q1",
            "order": 1,
            "question": "What was the change in revenue from 2018 to 2019?",
            "answer": 200,
            "derivation": "1,200 - 1,000",
            "answer_type": "arithmetic",
            "answer_from": "table",
            "rel_paragraphs": [],
            "req_comparison": False,
            "scale": "thousand",
        },
        {
            "uid": "q2",
            "order": 2,
            "question": "Why did revenue grow?",
            "answer": ["new customers"],
            "derivation": "",
            "answer_type": "span",
            "answer_from": "text",
            "rel_paragraphs": ["1"],
            "req_comparison": False,
            "scale": "",
        },
    ],
}


@pytest.mark.slow
def test_evaluate_file_scores_a_finqa_file(tmp_path):
    path = tmp_path / "finqa.json"
    path.write_text(json.dumps([finqa_item(r) for r in generate(3, seed=31)]))
    result = evaluate_file(path, exported_model_folder(), progress=False)
    assert result["count"] == 3 and result["file"] == str(path)
    assert set(result["retrieval"]) == {"recall@1", "recall@3", "recall@5", "count"}
    assert set(result["program"]) == {"execution_accuracy", "program_accuracy", "count"}
    assert 0.0 <= result["program"]["execution_accuracy"] <= 1.0 and result["program"]["count"] == 3
    assert "tatqa" not in result


@pytest.mark.slow
def test_vfm_evaluate_scores_a_tatqa_file_with_the_evaluate_options(tmp_path):
    path = tmp_path / "tatqa.json"
    path.write_text(json.dumps([TATQA_CONTEXT]))
    model = str(exported_model_folder())
    result = run_vfm("evaluate", "finance", "--run", model, "--data", str(path), "--set", "evaluate.beam_size=1")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(result.stdout)
    assert scores["count"] == 2 and scores["program"]["count"] == 1
    assert scores["tatqa"]["all"]["count"] == 2 and scores["tatqa"]["arithmetic"]["count"] == 1
    assert set(scores["tatqa"]["all"]) == {"exact_match", "f1", "count"}
    assert "answers" not in scores, "TAT-QA answers are scored under the TAT-QA metric, not as a 0-count block"
    limited = run_vfm("evaluate", "finance", "--run", model, "--data", str(path), "--set", "evaluate.limit=1")
    assert json.loads(limited.stdout)["count"] == 1
    wrong = run_vfm("evaluate", "finance", "--run", model, "--data", str(path), "--set", "evaluate.beams=3")
    assert wrong.returncode == 2 and "unknown config field(s) evaluate.beams" in wrong.stderr


def test_vfm_evaluate_names_a_missing_file_in_one_line(tmp_path):
    result = run_vfm("evaluate", "finance", "--run", str(exported_model_folder()), "--data", str(tmp_path / "no.json"))
    assert result.returncode == 2 and "data path not found" in result.stderr and "Traceback" not in result.stderr


def _record(
    question: str,
    answer: float,
    scale: str = "",
    source: str = "tatqa",
    program: str | None = None,
    table: list[list[str]] | None = None,
) -> QARecord:
    return QARecord(
        id="r",
        pre_text=[],
        table=table or [["", "2019"], ["revenue", "1,200"]],
        post_text=[],
        question=question,
        answer=answer,
        program=program,
        scale=scale,
        source=source,
    )


def test_scores_count_correct_tatqa_executions_under_the_tatqa_metric():
    record = _record(
        "what percentage of revenue is it ?", 22.22, scale="percent", program="divide(2, 9), multiply(#0, const_100)"
    )
    right = Prediction("divide(2, 9), multiply(#0, const_100)", 22.22222, 0.9, (), (), (), scale="percent")
    wrong = Prediction("add(2, 9)", 11.0, 0.1, (), (), ())
    assert score_predictions([right], [record])["program"]["execution_accuracy"] == 1.0
    assert score_predictions([right], [record])["program"]["program_accuracy"] == 1.0
    assert score_predictions([wrong], [record])["program"]["execution_accuracy"] == 0.0
    assert score_predictions([right], [record])["tatqa"]["arithmetic"]["exact_match"] == 1.0


@pytest.mark.parametrize(
    ("question", "program", "table", "scale"),
    [
        (
            "what is the percentage change in revenue ?",
            "subtract(2, 1), divide(#0, 1), multiply(#1, const_100)",
            None,
            "percent",
        ),
        ("what is the ratio of a to b ?", "divide(2, 1)", None, ""),
        ("what is the change in revenue ?", "subtract(2, 1)", [["$'000", "2019"], ["revenue", "1"]], "thousand"),
        (
            "what is the change in revenue ?",
            "subtract(2, 1)",
            [["( in millions )", "2019"], ["revenue", "1"]],
            "million",
        ),
        ("what is the change in revenue ?", "subtract(2, 1)", None, ""),
        (
            "what is the average revenue ?",
            "add(2, 1), divide(#0, 2)",
            [["", "2019 $\u2019000"], ["revenue", "1"]],
            "thousand",
        ),
    ],
)
def test_the_scale_rule_follows_the_question_and_the_document(question, program, table, scale):
    record = _record(question, 1.0, table=table)
    assert rule_scale(record.question, record.table, [], program=program) == scale


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    with pytest.raises(VfmError, match="no records"):
        evaluate_file(path, tmp_path)


@pytest.mark.slow
def test_an_answer_only_prompt_file_is_scored_on_its_answers(tmp_path):
    records = [r for r in generate(4, seed=33) if isinstance(r.answer, float)]
    lines = []
    for r in records:
        table = "".join("|" + "|".join(row) + "|\n" for row in r.table)
        prompt = f"Context: {' '.join(r.pre_text)}\n{table}.\nQuestion: {r.question}\nAnswer:"
        lines.append(
            json.dumps(
                {
                    "id": r.id,
                    "conversations": [
                        {"from": "human", "value": prompt},
                        {"from": "assistant", "value": str(r.answer)},
                    ],
                }
            )
        )
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines))
    result = evaluate_file(path, exported_model_folder(), progress=False)
    assert result["answers"]["count"] == len(records) and result["program"]["count"] == 0
    assert 0.0 <= result["answers"]["execution_accuracy"] <= 1.0


def test_answers_are_scored_with_or_without_a_gold_program():
    record = QARecord(
        id="a",
        pre_text=[],
        table=[["", "2019"], ["sales", "9"]],
        post_text=[],
        question="what is 2 over 9 ?",
        answer=round(2 / 9, 5),
        source="finqa",
    )
    right = Prediction("divide(2, 9)", round(2 / 9, 5), 0.9, (), (), ())
    wrong = Prediction("add(2, 9)", 11.0, 0.1, (), (), ())
    nothing = Prediction(None, None, 0.0, (), (), ())
    scores = score_predictions([right, wrong, nothing], [record, record, record])
    assert scores["answers"] == {"execution_accuracy": 1 / 3, "count": 3} and scores["program"]["count"] == 0
