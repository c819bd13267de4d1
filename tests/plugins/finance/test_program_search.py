"""Finding the program behind an answer (weak labels for questions without programs)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from vfm.plugins.finance.data.data_splits import load_real_data, table_key
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.program_search import candidates, find_program, label_quality, label_records
from vfm.plugins.finance.language.executor import execute
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever

from .conftest import DATA_DIR, needs_data


@pytest.fixture(scope="module")
def retriever() -> EvidenceRetriever:
    return EvidenceRetriever().fit(generate(80, seed=3))


def _record(question: str, answer: float | str) -> QARecord:
    return QARecord(
        id="q",
        pre_text=["net sales were $ 5,829 million in 2019 , up from 2018 .", "we have 3 plants ."],
        table=[
            ["", "2019", "2018", "2017"],
            ["net sales", "$ 5,829", "$ 5,735", "$ 5,512"],
            ["operating costs", "( 4,100 )", "( 3,950 )", "( 3,800 )"],
        ],
        post_text=[],
        question=question,
        answer=answer,
        source="finqa",
    )


def test_the_percentage_change_is_found_with_its_evidence(retriever):
    answer = round((5829 - 5735) / 5735, 5)
    label = find_program(_record("what was the percentage change in net sales from 2018 to 2019?", answer), retriever)
    assert label is not None and label.program == "subtract(5829, 5735), divide(#0, 5735)"
    assert label.evidence == ("table_1",) and label.matches >= 1


def test_year_columns_steer_between_equal_answers(retriever):
    label = find_program(_record("what was the change in operating costs from 2017 to 2018?", -150.0), retriever)
    assert label is not None and execute(label.program, _record("", 0.0).table) == -150.0
    assert label.program == "subtract(-3950, -3800)"


def test_numbers_keep_their_program_form_and_years_are_not_arguments(retriever):
    record = _record("what were net sales in 2019?", 1.0)
    scores = dict(retriever.score_units(record.question, record.evidence(), {"table_1": "net sales"}))
    found = {c.argument: c for c in candidates(record, scores)}
    assert {"5829", "-4100", "3"} <= set(found) and "2019" not in found and "2018" not in found
    assert set(found["5829"].units) == {"table_1", "text_0"}
    assert all(0 < c.relevance <= 1 for c in found.values())


def test_answers_no_template_gives_and_comparisons_get_no_label(retriever):
    assert find_program(_record("what is the answer?", 123456.789), retriever) is None
    assert find_program(_record("were net sales above costs?", "yes"), retriever) is None


def test_the_search_recovers_most_hidden_synthetic_programs(retriever):
    records = [r for r in generate(40, seed=9) if r.program and isinstance(r.answer, float)]
    quality = label_quality(records, retriever)
    assert quality["count"] == len(records) and quality["labelled"] >= 0.8 * len(records)
    assert quality["precision"] >= 0.6
    labelled = label_records([replace(r, program=None, gold_evidence=[]) for r in records], retriever)
    assert len(labelled) == quality["labelled"]
    assert all(execute(r.program, r.table) == r.answer and r.gold_evidence for r in labelled)


@needs_data("finqa/dev_all883.pixiu_prompt.jsonl", "finqa/dev_sample200.original.json")
def test_unlabelled_finqa_questions_share_no_table_with_the_evaluation_records():
    real = load_real_data(DATA_DIR)
    held = {table_key(r) for r in real.finqa_dev}
    assert len(real.unlabelled) > 400 and not any(table_key(r) in held for r in real.unlabelled)
    assert all(r.program is None and not r.gold_evidence for r in real.unlabelled)


SCRIPT = Path(__file__).parents[3] / "benchmarks" / "finance_weak_labels.py"


@needs_data("finqa/dev_all883.pixiu_prompt.jsonl", "finqa/train_sample100.original.json")
def test_the_search_finds_most_real_finqa_programs():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(DATA_DIR)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert report["finqa_train"]["labelled"] >= 0.8 * report["finqa_train"]["count"]
    assert report["finqa_train"]["precision"] >= 0.65 and report["labelled"] >= 0.8 * report["unlabelled"]
