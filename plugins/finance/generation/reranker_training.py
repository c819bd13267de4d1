"""Fitting the beam re-ranker (:mod:`vfm.plugins.finance.generation.reranker`) of a model folder.

The folder's model (a training run's torch generator, or the ONNX files of a folder that has them)
decodes :data:`~vfm.plugins.finance.generation.reranker.BEAMS` beams for each selection question (the
records its training run selects its epoch on); each beam that runs is labelled by whether its answer is the question's; the re-ranker is
fitted on all of them and written to ``reranker.json``. The report gives the selection
execution accuracy of the generator's own order and, by 5-fold cross-validation over the
questions, of the re-ranker: the re-ranker is kept only when it does better. Training runs do
this as their step 6 (re-running ``vfm finetune finance --out RUN`` on a finished run fits it again).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.evaluation.evaluate import answer_is_correct
from vfm.plugins.finance.generation.decode import ProgramPredictor
from vfm.plugins.finance.generation.reranker import (
    BEAMS,
    FILE,
    BeamReranker,
    beam_features,
    number_facts,
    running_beams,
)

FOLDS = 5


def beam_questions(predictor: ProgramPredictor, records: Sequence[QARecord]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(features [B, F], correct [B])`` of the beams that run, for each record (B may be 0)."""
    questions = []
    for record in records:
        prediction = predictor.predict_record(record)
        running = list(running_beams(prediction.beams, record.table))
        facts = number_facts(record.evidence(), dict(prediction.ranking))
        features = beam_features(" ".join([*record.history, record.question]), running, facts)
        questions.append((features, np.array([answer_is_correct(b.answer, record) for b in running], dtype=bool)))
    return questions


def chosen_accuracy(reranker: BeamReranker | None, questions: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """The share of questions whose chosen beam is correct (None: the generator's first that runs)."""
    hits = [bool(y[0 if reranker is None else reranker.choose(x)]) if len(y) else False for x, y in questions]
    return float(np.mean(hits)) if hits else 0.0


def fit_reranker(folder: str | Path, records: Sequence[QARecord], *, l2: float = 1.0) -> dict[str, Any]:
    """Fit the re-ranker of ``folder`` on ``records`` (with their programs' answers); write
    ``reranker.json`` when cross-validation says it beats the generator's own order, else remove any.

    Returns:
        ``{"questions", "beams", "l2", "first_running", "any_beam_correct", "reranked_cross_validated",
        "kept"}`` (accuracies on ``records``; ``any_beam_correct`` is the most any choice could reach), plus
        ``"reason"`` when nothing was fitted.
    """
    path = Path(folder) / FILE
    path.unlink(missing_ok=True)
    questions = beam_questions(ProgramPredictor(folder, beam_size=BEAMS, rerank=False), records)
    report: dict[str, Any] = {
        "questions": len(questions),
        "beams": BEAMS,
        "l2": l2,
        "first_running": chosen_accuracy(None, questions),
        "any_beam_correct": float(np.mean([y.any() for _, y in questions])) if questions else 0.0,
        "kept": False,
    }
    try:
        hits = []
        for fold in range(FOLDS):
            held = questions[fold::FOLDS]
            rest = [q for i, q in enumerate(questions) if i % FOLDS != fold]
            hits.append(chosen_accuracy(BeamReranker().fit(rest, l2=l2), held) * len(held))
        report["reranked_cross_validated"] = float(sum(hits) / len(questions))
        reranker = BeamReranker().fit(questions, l2=l2)
    except VfmError as err:
        return report | {"reranked_cross_validated": None, "reason": err.what}
    if report["reranked_cross_validated"] > report["first_running"]:
        reranker.save(path)
        report["kept"] = True
    return report
