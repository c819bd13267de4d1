"""Does a pretrained sentence encoder help the finance evidence retriever? Zero-shot and contrastively
fine-tuned dense ranking, alone and fused into the retriever's logistic regression, side by side with the
lexical retriever, in one run.

The encoder (default the packaged all-MiniLM-L6-v2; any model reference, see docs/models.md) embeds
each question and each evidence unit (mean-pooled, normalised, as sentence-transformers does). The
fine-tuned encoder is what ``vfm finetune finance --set finetune.dense_retriever=...`` trains
(:func:`vfm.plugins.finance.retrieval.dense_training.train_dense_encoder`, settings from
:class:`~vfm.plugins.finance.generation.generator_training.TrainingSettings`). Rankers, all fitted on
generator_training's fit set (the real training records outside the selection documents, plus 300
synthetic records):

- ``lexical``: the retriever without a dense encoder (BM25, overlaps, row names, numbers, layout cues);
- ``dense zero-shot`` / ``dense tuned``: the cosine alone;
- ``lexical+zero-shot`` / ``lexical+tuned``: the retriever with the encoder's three dense features (the
  shipped configuration is ``lexical+tuned``).

Prints FinQA's recall@1/3/5 (%) on the selection records, FinQA dev and the TAT-QA held-out part:

    python benchmarks/finance_dense_retriever.py --data-dir $VFM_DATA_DIR --out runs/dense-retriever
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vfm.finetune.bi_encoder import TorchSentenceEncoder
from vfm.platform.models.sources import resolve
from vfm.plugins.finance.data.data_splits import load_real_data, selection_split
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.features import record_question
from vfm.plugins.finance.generation.generator_training import TrainingSettings, dense_settings
from vfm.plugins.finance.retrieval.dense import dense_features, load_dense_encoder
from vfm.plugins.finance.retrieval.dense_training import train_dense_encoder
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever, retrieval_recall


def cosine_rank(encoder) -> Callable[[QARecord], list[str]]:
    def rank(record: QARecord) -> list[str]:
        units = record.evidence()
        cosine = dense_features(encoder, record_question(record), units)[:, 0]
        ids = list(units)
        return [ids[i] for i in np.argsort(-cosine, kind="stable")]

    return rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True, help="where the fine-tuned encoder goes (kept and reused)")
    parser.add_argument("--encoder", default="all-minilm-l6-v2", help="a model reference")
    parser.add_argument("--steps", type=int, default=TrainingSettings.dense_steps)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    real = load_real_data(args.data_dir)
    fit, select = selection_split(real.train)
    fit = fit + generate(3000, seed=0)[:300]
    sets = {"selection": select, "finqa_dev": real.finqa_dev, "tatqa_held_out": real.tatqa_held_out}
    settings = TrainingSettings(dense_steps=args.steps)
    length = settings.dense_max_length
    zero_shot = TorchSentenceEncoder(resolve(args.encoder), length)
    tuning_started = time.perf_counter()
    report = train_dense_encoder(fit, resolve(args.encoder), dense_settings(settings), Path(args.out), progress=False)
    tuning_seconds = time.perf_counter() - tuning_started
    tuned = load_dense_encoder(Path(args.out), length)
    rankers = {
        "lexical": EvidenceRetriever().fit(fit).rank,
        "dense zero-shot": cosine_rank(zero_shot),
        "dense tuned": cosine_rank(tuned),
        "lexical+zero-shot": EvidenceRetriever(dense=zero_shot, dense_max_length=length).fit(fit).rank,
        "lexical+tuned": EvidenceRetriever(dense=tuned, dense_max_length=length).fit(fit).rank,
    }
    result: dict = {
        name: {
            s: {k: round(100 * v, 1) for k, v in retrieval_recall(rank, records).items() if k != "count"}
            for s, records in sets.items()
        }
        for name, rank in rankers.items()
    }
    result["encoder"] = args.encoder
    result["fine_tuning"] = {**report, "seconds_this_call": round(tuning_seconds, 1)}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    print(
        f"# reproduce: python benchmarks/finance_dense_retriever.py --data-dir {args.data_dir} --out {args.out} "
        f"--encoder {args.encoder} --steps {args.steps}"
    )


if __name__ == "__main__":
    main()
