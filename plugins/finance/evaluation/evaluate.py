"""Scoring a finance model folder on any FinQA, TAT-QA or ConvFinQA file.

    vfm evaluate finance --run RUN --data FILE [--set evaluate.beam_size=N --set evaluate.limit=N]

prints one JSON object. It runs the folder's model through :class:`ProgramPredictor`: torch-free on a bundle (its ONNX
model), in torch on a training run (its generator's weights).

Scores, each with the count of questions it is taken over:

- ``retrieval``: FinQA's recall@k of the gold evidence (questions with gold evidence);
- ``program``: over questions with a gold program, FinQA's *execution accuracy* and
  *program accuracy* (:func:`finqa_scores`). A TAT-QA answer is rounded to 2 decimals in
  the dataset, so a TAT-QA execution counts as correct when it matches under the TAT-QA
  metric in the gold scale (as ``check_gold`` checks the gold programs); FinQA and
  ConvFinQA answers must match exactly (5 decimals), as in FinQA's evaluation;
- ``answers``: over the FinQA, ConvFinQA and synthetic questions with a number or yes/no
  answer, gold program or not, the share whose predicted program executes to the answer
  (FinQA's execution match): the only score of answer-only files such as FinQA prompts;
- ``tatqa`` (TAT-QA files): TAT-QA exact match and F1 with a *predicted* scale (see
  :mod:`scale`), over all questions, the arithmetic ones and the span / multi-span ones.
  Span answers (and counts of years) come from the table lookup (:mod:`lookup`) and the text
  answerer (:mod:`text_answer`: a whole sentence) when the folder has them;
- ``answered_by``: how many questions were answered by a program, from table cells, or with a
  sentence.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.loaders import load_any
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.evaluation.metrics import (
    finqa_execution_match,
    finqa_program_match,
    finqa_scores,
    mean_recall_at_k,
    tatqa_em_f1,
)
from vfm.plugins.finance.generation.decode import Prediction, ProgramPredictor


def evaluate_file(
    path: str | Path,
    model_dir: str | Path,
    *,
    beam_size: int | None = None,
    rerank: bool = True,
    lookup: bool = True,
    limit: int | None = None,
    ks: Sequence[int] = (1, 3, 5),
    progress: bool = True,
) -> dict[str, Any]:
    """Score the model in ``model_dir`` on the questions in ``path``.

    Args:
        path: a FinQA, TAT-QA or ConvFinQA JSON file, or a FinQA prompt file (`.jsonl`; see
            :func:`load_any`).
        model_dir: a training run (``vfm finetune finance``) or a bundle (``vfm export finance``).
        beam_size: overrides the folder's beam size (1: greedy).
        rerank: choose among the beams with the folder's re-ranker, when it has one.
        lookup: answer from table cells and with sentences, with the folder's table lookup and
            text answerer, when it has them.
        limit: score only the first ``limit`` questions.
        ks: the k of recall@k.
        progress: show a progress bar on stderr.

    Returns:
        ``{"file", "count", "retrieval": {...}, "program": {...}, "tatqa": {...} (TAT-QA only)}``.
    """
    records = load_any(path)[:limit]
    if not records:
        raise VfmError("the file holds no questions", where=str(path), fix="pass a non-empty dataset file")
    predictor = ProgramPredictor(model_dir, beam_size=beam_size, rerank=rerank, lookup=lookup)
    return {"file": str(path), **evaluate_records(predictor, records, ks=ks, progress=progress)}


def evaluate_records(
    predictor: ProgramPredictor, records: Sequence[QARecord], *, ks: Sequence[int] = (1, 3, 5), progress: bool = False
) -> dict[str, Any]:
    """The scores of :func:`evaluate_file` for records already loaded."""
    predictions = [
        predictor.predict_record(r) for r in tqdm(records, desc="answering", disable=not progress, file=sys.stderr)
    ]
    return score_predictions(predictions, records, ks=ks)


def score_predictions(
    predictions: Sequence[Prediction], records: Sequence[QARecord], *, ks: Sequence[int] = (1, 3, 5)
) -> dict[str, Any]:
    """Retrieval, program, answer (FinQA/ConvFinQA arithmetic or comparison questions) and TAT-QA scores of
    predictions, one per record; a block is left out when no record qualifies for it."""
    result: dict[str, Any] = {"count": len(records)}
    with_gold = [(p, r) for p, r in zip(predictions, records, strict=True) if r.gold_evidence]
    ranked = [[ident for ident, _ in p.ranking] for p, _ in with_gold]
    result["retrieval"] = {
        f"recall@{k}": mean_recall_at_k(ranked, [r.gold_evidence for _, r in with_gold], k) for k in ks
    } | {"count": len(with_gold)}
    programs = [(p, r) for p, r in zip(predictions, records, strict=True) if r.program is not None]
    result["program"] = _program_scores(programs)
    answered = [
        (p, r)
        for p, r in zip(predictions, records, strict=True)
        if r.source != "tatqa" and r.answer_type in ("arithmetic", "comparison")
    ]
    if answered:
        correct = sum(
            p.program is not None and finqa_execution_match(p.program, r.table, r.answer) for p, r in answered
        )
        result["answers"] = {"execution_accuracy": correct / len(answered), "count": len(answered)}
    tatqa = [(p, r) for p, r in zip(predictions, records, strict=True) if r.source == "tatqa"]
    if tatqa:
        arithmetic = [(p, r) for p, r in tatqa if r.answer_type == "arithmetic"]
        spans = [(p, r) for p, r in tatqa if r.answer_type in ("span", "multi-span")]
        result["tatqa"] = {
            "all": _tatqa_scores(tatqa),
            "arithmetic": _tatqa_scores(arithmetic),
            "spans": _tatqa_scores(spans),
        }
    result["answered_by"] = {kind: sum(p.kind == kind for p in predictions) for kind in ("program", "lookup", "text")}
    return result


def _program_scores(pairs: Sequence[tuple[Prediction, QARecord]]) -> dict[str, float]:
    """Execution and program accuracy; TAT-QA executions are matched under the TAT-QA metric."""
    if not pairs:
        return {"execution_accuracy": 0.0, "program_accuracy": 0.0, "count": 0}
    finqa = [(p, r) for p, r in pairs if r.source != "tatqa"]
    scores = finqa_scores([p.program or "" for p, _ in finqa], [r for _, r in finqa]) if finqa else {}
    executed = scores.get("execution_accuracy", 0.0) * len(finqa)
    programs = scores.get("program_accuracy", 0.0) * len(finqa)
    for prediction, record in pairs:
        if record.source != "tatqa":
            continue
        executed += prediction.kind == "program" and answer_is_correct(prediction.answer, record)
        programs += prediction.program is not None and finqa_program_match(prediction.program, record.program)
    return {"execution_accuracy": executed / len(pairs), "program_accuracy": programs / len(pairs), "count": len(pairs)}


def answer_is_correct(answer: float | str | None, record: QARecord) -> bool:
    """Whether an executed answer is the record's: FinQA's exact match, or, for TAT-QA, the exact
    match of an arithmetic answer in the record's scale."""
    if answer is None:
        return False
    if record.source == "tatqa":
        return tatqa_em_f1(str(answer), record.scale, record.answer, record.scale, "arithmetic")[0] == 1.0
    return answer == record.answer


def _tatqa_scores(pairs: Sequence[tuple[Prediction, QARecord]]) -> dict[str, float]:
    """TAT-QA exact match and F1 of the answers, in their predicted scale (:attr:`Prediction.scale`)."""
    if not pairs:
        return {"exact_match": 0.0, "f1": 0.0, "count": 0}
    scores = []
    for prediction, record in pairs:
        if prediction.kind == "lookup":
            answer = [prediction.answer] if isinstance(prediction.answer, str) else list(prediction.answer)
        else:
            answer = "" if prediction.answer is None else str(prediction.answer)
        scores.append(
            tatqa_em_f1(
                answer, prediction.scale, record.answer_spans or record.answer, record.scale, record.answer_type
            )
        )
    return {
        "exact_match": sum(s[0] for s in scores) / len(scores),
        "f1": sum(s[1] for s in scores) / len(scores),
        "count": len(scores),
    }
