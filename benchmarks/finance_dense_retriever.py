"""Does a pretrained sentence encoder help the finance evidence retriever? Zero-shot dense ranking and
dense similarity fused into the retriever's logistic regression, side by side with the shipped one.

The encoder (default the packaged all-MiniLM-L6-v2; any model reference, see docs/models.md) embeds
each question and each evidence unit (mean-pooled, normalised, as sentence-transformers does); a
unit's dense features are its cosine with the question, the cosine relative to the document's best
and its reciprocal rank. Rankers, all fitted on generator_training's fit set (the real training
records outside the selection documents, plus 300 synthetic records):

- ``logistic``: the shipped retriever (BM25, overlaps, row names, numbers, layout cues);
- ``dense``: the cosine alone (zero-shot);
- ``logistic+dense``: the shipped features plus the three dense ones, one logistic regression.

Prints FinQA's recall@1/3/5 (%) on the selection records, FinQA dev and the TAT-QA held-out part:

    python benchmarks/finance_dense_retriever.py --data-dir $VFM_DATA_DIR
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from vfm.platform.models.sources import resolve
from vfm.plugins.finance.data.data_splits import load_real_data, selection_split
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.features import record_question
from vfm.plugins.finance.retrieval.logistic import fit_logistic
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever, record_row_names, retrieval_recall, unit_features


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings [N, D], cached by text."""

    def __init__(self, reference: str, max_length: int = 128, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        folder = resolve(reference)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.max_length, self.batch_size, self.cache = max_length, batch_size, {}

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self.cache}, key=len)  # similar lengths batch together
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            batch = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            hidden = self.model(**batch).last_hidden_state  # [B, T, D]
            mask = batch["attention_mask"][..., None].float()  # [B, T, 1]
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)  # [B, D]
            self.cache.update(zip(chunk, pooled.numpy(), strict=True))
        return np.stack([self.cache[t] for t in texts])


def dense_features(embed: Embedder, record: QARecord) -> np.ndarray:
    """[N, 3]: each unit's cosine with the question, relative to the best, and its reciprocal rank."""
    units = record.evidence()
    cosine = embed(list(units.values())) @ embed([record_question(record)])[0]  # [N]
    ranks = np.empty(len(cosine))
    ranks[np.argsort(-cosine, kind="stable")] = np.arange(1, len(cosine) + 1)
    return np.stack([cosine, cosine - cosine.max(), 1.0 / ranks], axis=1)


def shipped_features(record: QARecord) -> np.ndarray:
    return unit_features(record_question(record), record.evidence(), record_row_names(record), len(record.pre_text))


def fit_fused(records: Sequence[QARecord], embed: Embedder):
    """The shipped retriever's fit (record and source weights) over shipped + dense features."""
    blocks, labels, weights = [], [], []
    sources: dict[str, int] = {}
    for record in records:
        sources[record.source] = sources.get(record.source, 0) + 1
    for record in records:
        ids = list(record.evidence())
        gold = set(record.gold_evidence) & set(ids)
        if not gold or len(gold) == len(ids):
            continue
        blocks.append(np.concatenate([shipped_features(record), dense_features(embed, record)], axis=1))
        label = np.array([ident in gold for ident in ids], dtype=np.float64)
        share = len(records) / (len(sources) * sources[record.source])
        labels.append(label)
        weights.append(share * np.where(label > 0, 1.0 / label.sum(), 1.0 / (len(label) - label.sum())))
    model = fit_logistic(np.concatenate(blocks), np.concatenate(labels), np.concatenate(weights))

    def rank(record: QARecord) -> list[str]:
        features = np.concatenate([shipped_features(record), dense_features(embed, record)], axis=1)
        ids = list(record.evidence())
        return [ids[i] for i in np.argsort(-model.probabilities(features), kind="stable")]

    return rank


def recalls(rank: Callable[[QARecord], list[str]], records: Sequence[QARecord]) -> dict[str, float]:
    """Recall@1/3/5 (%) of ``rank`` over the records that have gold evidence."""
    return {k: round(100 * v, 1) for k, v in retrieval_recall(rank, records).items() if k != "count"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--encoder", default="all-minilm-l6-v2", help="a model reference")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    real = load_real_data(args.data_dir)
    fit, select = selection_split(real.train)
    fit = fit + generate(3000, seed=0)[:300]
    sets = {"selection": select, "finqa_dev": real.finqa_dev, "tatqa_held_out": real.tatqa_held_out}
    embed = Embedder(args.encoder)
    logistic = EvidenceRetriever().fit(fit)

    def dense_rank(record: QARecord) -> list[str]:
        ids = list(record.evidence())
        return [ids[i] for i in np.argsort(-dense_features(embed, record)[:, 0], kind="stable")]

    rankers = {"logistic": logistic.rank, "dense": dense_rank, "logistic+dense": fit_fused(fit, embed)}
    result = {name: {s: recalls(rank, records) for s, records in sets.items()} for name, rank in rankers.items()}
    result["encoder"] = args.encoder
    result["texts_embedded"] = len(embed.cache)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    print(
        f"# reproduce: python benchmarks/finance_dense_retriever.py --data-dir {args.data_dir} --encoder {args.encoder}"
    )


if __name__ == "__main__":
    main()
