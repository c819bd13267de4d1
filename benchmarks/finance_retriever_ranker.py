"""Does a gradient-boosted ranker over the retriever's features beat its logistic regression?

Fits both on the records and the fit set that ``generator_training`` uses (the real training
records outside the selection documents, plus 300 synthetic records) and prints FinQA's
recall@1/3/5 on the selection records, FinQA dev and the held-out TAT-QA questions as JSON:

    python benchmarks/finance_retriever_ranker.py --data-dir $VFM_DATA_DIR [--seeds 0 1]

The ranker is LightGBM's lambdarank over :data:`vfm.plugins.finance.retrieval.retriever.FEATURES`, one
query per question, the gold units relevant; its seeds vary the row and feature subsampling.
Needs ``pip install -e '.[bench]'`` (LightGBM; not a dependency of vfm itself: the shipped
retriever is the logistic regression, whose probabilities the weak-label search multiplies).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence

import lightgbm
import numpy as np

from vfm.plugins.finance.data.data_splits import load_real_data, selection_split
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.features import record_question
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever, record_row_names, retrieval_recall, unit_features

RANKER_PARAMS = {
    "objective": "lambdarank",
    "num_leaves": 15,
    "learning_rate": 0.03,
    "min_data_in_leaf": 20,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "lambdarank_truncation_level": 5,
    "num_threads": 1,
    "verbose": -1,
}
ROUNDS = 300


def features_of(record: QARecord) -> tuple[list[str], np.ndarray]:
    """A record's evidence ids and their ``[N, len(FEATURES)]`` features."""
    evidence = record.evidence()
    features = unit_features(record_question(record), evidence, record_row_names(record), len(record.pre_text))
    return list(evidence), features


def fit_ranker(records: Sequence[QARecord], seed: int) -> lightgbm.Booster:
    """Lambdarank on the records that have gold evidence among other units."""
    blocks, labels, groups = [], [], []
    for record in records:
        ids, features = features_of(record)
        gold = set(record.gold_evidence) & set(ids)
        if gold and len(gold) < len(ids):
            blocks.append(features)
            labels.append([int(ident in gold) for ident in ids])
            groups.append(len(ids))
    data = lightgbm.Dataset(np.concatenate(blocks), np.concatenate(labels), group=groups)
    return lightgbm.train({**RANKER_PARAMS, "seed": seed}, data, num_boost_round=ROUNDS)


def ranker_order(ranker: lightgbm.Booster) -> Callable[[QARecord], list[str]]:
    """A record's evidence ids, best first by ``ranker``'s score (ties in document order)."""

    def rank(record: QARecord) -> list[str]:
        ids, features = features_of(record)
        return [ids[i] for i in np.argsort(-ranker.predict(features), kind="stable")]

    return rank


def recalls(rank: Callable[[QARecord], list[str]], records: Sequence[QARecord]) -> dict[str, float]:
    """Recall@1/3/5 (%) of ``rank`` over the records that have gold evidence."""
    return {k: round(100 * v, 1) for k, v in retrieval_recall(rank, records).items() if k != "count"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the folder holding finqa/, tatqa/, convfinqa/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="ranker seeds")
    args = parser.parse_args()
    started = time.perf_counter()
    real = load_real_data(args.data_dir)
    fit, select = selection_split(real.train)
    fit = fit + generate(3000, seed=0)[:300]  # generator_training's fit set with --seed 0
    sets = {"selection": select, "finqa_dev": real.finqa_dev, "tatqa_held_out": real.tatqa_held_out}
    logistic = EvidenceRetriever().fit(fit)
    result = {"logistic_regression": {name: recalls(logistic.rank, records) for name, records in sets.items()}}
    for seed in args.seeds:
        rank = ranker_order(fit_ranker(fit, seed))
        result[f"lambdarank_seed{seed}"] = {name: recalls(rank, records) for name, records in sets.items()}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
