"""Fitting the parts that shape an answer beside the program generator: the table lookup
(``lookup.json``, :mod:`lookup`), the text answerer (``text_answer.json``, :mod:`text_answer`)
and the scale model (``scale.json``, :mod:`scale`).

A training run fits them as its step 7 (:mod:`generator_training`), from its real training
records (never the evaluation ones); each takes seconds. Re-running ``vfm finetune finance --out
RUN`` on a finished run resumes at its end and fits them again (a run trained before they existed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vfm.plugins.finance.answers.lookup import FILE as LOOKUP_FILE
from vfm.plugins.finance.answers.lookup import fit_table_lookup, training_questions
from vfm.plugins.finance.answers.scale import FILE as SCALE_FILE
from vfm.plugins.finance.answers.scale import fit_scale_model
from vfm.plugins.finance.answers.text_answer import FILE as TEXT_FILE
from vfm.plugins.finance.answers.text_answer import fit_text_answerer
from vfm.plugins.finance.data.records import QARecord


def fit_answer_models(
    out: str | Path,
    real: Sequence[QARecord],
    synthetic: Sequence[QARecord],
    retriever: Any,
    *,
    numeric: Sequence[QARecord] = (),
    lookup: bool = True,
    synthetic_lookups: int = 300,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit the table lookup (on ``real``, else ``synthetic``, plus synthetic cell questions), the
    text answerer (on ``real`` and ``numeric``, questions known to want a number, ranked by
    ``retriever``) and the scale model (on the TAT-QA questions of ``real``), and write those kept
    into ``out``.

    Returns:
        ``{"lookup": report, "text_answer": report, "scale": report}``, each saying whether it was
        kept and why not.
    """
    out = Path(out)
    off = {"kept": False, "why": "not asked for (lookup=false)"}
    reports: dict[str, Any] = {"lookup": off, "text_answer": off}
    if lookup:
        table_lookup, reports["lookup"] = fit_table_lookup(
            training_questions(real, synthetic, synthetic_lookups, seed=seed)
        )
        if table_lookup is not None:
            table_lookup.save(out / LOOKUP_FILE, **reports["lookup"])
        answerer, reports["text_answer"] = fit_text_answerer([*real, *numeric], retriever)
        if answerer is not None:
            answerer.save(out / TEXT_FILE, **reports["text_answer"])
    scale_model, reports["scale"] = fit_scale_model(real)
    if scale_model is not None:
        scale_model.save(out / SCALE_FILE, **reports["scale"])
    return reports
