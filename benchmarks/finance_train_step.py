"""What one training step of the finance program generator costs: the scratch encoder against a pretrained one.

Times forward + backward + AdamW on batches of 32 synthetic training examples (real ones cost the
same per token), after one warm-up step, for the scratch word-level encoder (the reported recipe:
256 tokens) and for a pretrained encoder (default the packaged MiniLM-L6, at 512 WordPiece tokens,
which hold what 256 words do; any model reference works). Prints seconds per step, examples per
second and the hours an epoch of the reported recipe's 6,174 examples would take:

    python benchmarks/finance_train_step.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from tokenizers import Tokenizer

from vfm.platform.models.sources import resolve
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.features import InputEncoder
from vfm.plugins.finance.generation.generator import SCRATCH, build_generator, collate
from vfm.plugins.finance.generation.generator_training import (
    TrainingSettings,
    make_training_examples,
    record_texts,
    train_word_tokenizer,
)
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever

EPOCH_EXAMPLES = 6174
"""Training examples per epoch of the reported recipe (3,174 real views + 3,000 synthetic)."""


def step_seconds(encoder: str, max_len: int, batch_size: int, steps: int) -> float:
    """Mean seconds of a training step after one warm-up step."""
    records = generate(400, seed=0)
    retriever = EvidenceRetriever().fit(records)
    if encoder == SCRATCH:
        tokenizer = Tokenizer.from_str(train_word_tokenizer(record_texts(records), 10000, 2).to_str())
    else:
        tokenizer = Tokenizer.from_file(str(resolve(encoder) / "tokenizer.json"))
    settings = TrainingSettings(encoder=str(resolve(encoder)) if encoder != SCRATCH else SCRATCH, max_len=max_len)
    examples, _ = make_training_examples(records, retriever, InputEncoder(tokenizer, max_len), settings.top_k)
    examples = sorted(examples, key=lambda e: -len(e[0]))  # the longest inputs: the cost of a full batch
    model = build_generator(settings.model_config(tokenizer.get_vocab_size())).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = collate(examples[:batch_size])
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        loss = model.forward_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return sum(times[1:]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="all-minilm-l6-v2", help="a model reference")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    for name, encoder, max_len in (("scratch", SCRATCH, 256), (args.encoder, args.encoder, 512)):
        seconds = step_seconds(encoder, max_len, args.batch_size, args.steps)
        rows[name] = {
            "max_len": max_len,
            "seconds_per_step": round(seconds, 2),
            "examples_per_s": round(args.batch_size / seconds, 1),
            "hours_per_epoch": round(EPOCH_EXAMPLES / args.batch_size * seconds / 3600, 2),
        }
    print(json.dumps(rows, indent=2))
    print(
        f"# reproduce: python benchmarks/finance_train_step.py --encoder {args.encoder} --threads {args.threads} "
        f"--batch-size {args.batch_size} --steps {args.steps}"
    )


if __name__ == "__main__":
    main()
