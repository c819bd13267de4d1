"""Adapt a fresh GPT-2 decoder to driving language (the language side of the driving plugin).

Corpus: BDD-X annotations of the videos in ``train.txt`` (action + justification) and the
simulator's training commentary; held out: BDD-X ``val.txt`` and the simulator's held-out-seed
commentary (BDD-X ``test.txt`` is never read). The adapted ``OUT/model`` plugs into the commentary
model with ``vfm finetune driving --set finetune.text_model=OUT/model``.

    python benchmarks/driving_text_adaptation.py --data $VFM_DATA_DIR/bddx \\
        --sim $VFM_CACHE_DIR/driving-data/<key> --out runs/driving/text
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vfm.plugins.driving.loaders import driving_text_corpus, load_generic
from vfm.pretrain.text_adaptation import TextAdaptSettings, adapt_text_model
from vfm.pretrain.text_corpus import build_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the BDD-X folder (CSV + split files)")
    parser.add_argument(
        "--sim",
        type=Path,
        required=True,
        help="a simulated dataset folder with train/ and test_seeds/ (written by the driving pipeline)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", default="fresh:gpt2-mini")
    parser.add_argument("--steps", type=int, default=800)
    args = parser.parse_args()

    csv = args.data / "BDD-X-Annotations_v1.csv"
    corpus = driving_text_corpus(
        load_generic(args.sim / "train"), bddx_csv=csv, bddx_split_file=args.data / "train.txt"
    )
    held_out = {
        "sim_test_seeds": driving_text_corpus(load_generic(args.sim / "test_seeds")),
        "bddx_val": driving_text_corpus(bddx_csv=csv, bddx_split_file=args.data / "val.txt"),
    }
    settings = TextAdaptSettings(
        max_steps=args.steps,
        lr=1e-3,
        warmup_steps=args.steps // 10,
        block_size=64,
        batch_size=32,
        vocab_size=2000,
        precision="32",
        checkpoint_every_n_steps=200,
    )
    metrics = adapt_text_model(
        args.base, build_corpus(corpus), None, settings, args.out, progress=False, extra_eval=held_out
    )
    print(json.dumps({"perplexity": metrics["perplexity"], "train": metrics["train"]}, indent=2, default=str))


if __name__ == "__main__":
    main()
