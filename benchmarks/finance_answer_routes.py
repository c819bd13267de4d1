"""What the answers that are not programs add: each finance run scored with and without them.

For each model folder, scores FinQA dev and the held-out TAT-QA questions twice: with every
answer route the folder has (table lookup, text answers; :mod:`vfm.plugins.finance.answers.lookup`,
:mod:`vfm.plugins.finance.answers.text_answer`) and with programs only (``lookup=False``). The scale
model, when the folder has one, is used by both. Prints JSON, one object per folder, plus the
means over folders:

    python benchmarks/finance_answer_routes.py --data-dir $VFM_DATA_DIR --model RUN [RUN ...]

Runs decode with their torch generator, bundles with the ONNX runtime (torch-free); about 45 s per folder on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vfm.plugins.finance.data.data_splits import load_real_data
from vfm.plugins.finance.evaluation.evaluate import evaluate_records
from vfm.plugins.finance.generation.decode import ProgramPredictor

MEASURES = {
    "tatqa_exact_match": ("tatqa_held_out", ("tatqa", "all", "exact_match")),
    "tatqa_f1": ("tatqa_held_out", ("tatqa", "all", "f1")),
    "tatqa_spans_exact_match": ("tatqa_held_out", ("tatqa", "spans", "exact_match")),
    "tatqa_spans_f1": ("tatqa_held_out", ("tatqa", "spans", "f1")),
    "tatqa_arithmetic_exact_match": ("tatqa_held_out", ("tatqa", "arithmetic", "exact_match")),
    "tatqa_arithmetic_execution": ("tatqa_held_out", ("program", "execution_accuracy")),
    "finqa_execution": ("finqa_dev", ("program", "execution_accuracy")),
}
"""Reported measure -> (evaluation set, path in :func:`evaluate_records`' result)."""


def score_folder(folder: Path, sets: dict[str, Sequence[Any]]) -> dict[str, Any]:
    """``{"all_routes" | "programs_only": {measure: %, "answered_by": {set: counts}}}`` of one folder."""
    result: dict[str, Any] = {}
    for mode, lookup in (("all_routes", True), ("programs_only", False)):
        predictor = ProgramPredictor(folder, lookup=lookup)
        scores = {name: evaluate_records(predictor, records) for name, records in sets.items()}
        result[mode] = {measure: round(100 * _get(scores[name], path), 2) for measure, (name, path) in MEASURES.items()}
        result[mode]["answered_by"] = {name: s["answered_by"] for name, s in scores.items()}
    return result


def _get(tree: dict[str, Any], path: Sequence[str]) -> float:
    for key in path:
        tree = tree[key]
    return float(tree)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the real data folder ($VFM_DATA_DIR)")
    parser.add_argument("--model", type=Path, nargs="+", required=True, help="finance model folders (runs)")
    args = parser.parse_args(argv)
    real = load_real_data(args.data_dir)
    sets = {"finqa_dev": real.finqa_dev, "tatqa_held_out": real.tatqa_held_out}
    folders = {str(folder): score_folder(folder, sets) for folder in args.model}
    means = {
        mode: {measure: round(float(np.mean([f[mode][measure] for f in folders.values()])), 2) for measure in MEASURES}
        for mode in ("all_routes", "programs_only")
    }
    print(json.dumps({"folders": folders, "mean": means}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
