"""Fitting the parts that shape an answer beside the program generator: the table lookup
(``lookup.json``, :mod:`lookup`), the text answerer (``text_answer.json``, :mod:`text_answer`)
and the scale model (``scale.json``, :mod:`scale`).

A training run fits both (step 7 of :mod:`generator_training`); for a run trained before they
existed::

    python -m vfm.plugins.finance.answers.answer_fitting --data-dir DATA --model MODEL_DIR

fits them the same way from the real training records of ``DATA`` (never the evaluation ones)
and prints what each was fitted on as JSON. Each takes seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError, print_json_or_error
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


def fit_into_model(data_dir: str | Path, model_dir: str | Path, *, synthetic_lookups: int = 300) -> dict[str, Any]:
    """:func:`fit_answer_models` from the real training records of ``data_dir`` into the finance
    model folder ``model_dir``.

    Raises:
        VfmError: ``model_dir`` is not a finance model folder, or the data cannot be read.
    """
    from vfm.plugins.finance.data.data_splits import load_real_data
    from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever

    model_dir = Path(model_dir)
    if not (model_dir / "finance_model.json").is_file():
        raise VfmError(
            "not a finance model folder (no finance_model.json)",
            where=str(model_dir),
            fix="pass the --out folder of 'vfm finetune finance'",
        )
    real = load_real_data(data_dir)
    return fit_answer_models(
        model_dir,
        real.train,
        [],
        EvidenceRetriever.load(model_dir / "retriever.json"),
        numeric=real.unlabelled,
        synthetic_lookups=synthetic_lookups,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Fit the table lookup, the text answerer and the scale model into a finance model folder; prints
    the reports as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m vfm.plugins.finance.answers.answer_fitting",
        description="Fit the table lookup, the text answerer and the answer-scale model into a finance model folder.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="the real data folder (finqa/, tatqa/, ...)")
    parser.add_argument("--model", type=Path, required=True, help="the --out folder of a finance run")
    parser.add_argument(
        "--synthetic-lookups",
        type=int,
        default=300,
        help="synthetic cell questions added to the lookup's training (default: 300)",
    )
    args = parser.parse_args(argv)
    return print_json_or_error(
        lambda: fit_into_model(args.data_dir, args.model, synthetic_lookups=args.synthetic_lookups)
    )


if __name__ == "__main__":
    sys.exit(main())
