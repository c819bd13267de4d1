"""Domain text adaptation of real pretrained bases on finance text: before and after, side by side.

For each base (packaged models by default: MiniLM-L6 as a masked LM, SmolLM2-135M as a causal LM;
any model reference works, see docs/models.md), continues pretraining on the finance corpus —
the contexts of the FinQA, TAT-QA and ConvFinQA training records plus Financial PhraseBank, minus
every document of FinQA dev and the TAT-QA held-out part (by id and by content) — mixed with
out-of-domain English (BDD-X driving explanations of the ``train.txt`` videos) at ``--mix``.
Reports, before and after: perplexity on held-out finance text (FinQA dev and TAT-QA held-out
contexts), on held-out out-of-domain text of the kind mixed in (BDD-X ``val.txt``), and on general
English no run trains on (the prose of Python's reference documentation, ``pydoc_data.topics``,
which every Python ships: the forgetting); for masked LMs also the pseudo-perplexity; tokens/s,
trained parameters and wall time. ``--lora-ranks`` gives each base its LoRA rank (0: every weight
trains). Prints JSON and a markdown table:

    python benchmarks/text_adaptation_real_bases.py --data-dir $VFM_DATA_DIR --out runs/text-real

Each adapted ``OUT/<base>/model`` reloads with ``AutoModel.from_pretrained`` and feeds
``vfm finetune finance --set finetune.pretrained=OUT/<base>/model``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vfm.plugins.driving.loaders import driving_text_corpus
from vfm.plugins.finance.data.corpus import finance_documents, read_phrasebank
from vfm.plugins.finance.data.data_splits import load_real_data
from vfm.pretrain.text_adaptation import TextAdaptSettings, adapt_text_model
from vfm.pretrain.text_corpus import Document, build_corpus

RECIPES = {
    "mlm": {"lr": 5e-5, "batch_size": 8, "add_domain_tokens": 200},
    "clm": {"lr": 2e-5, "batch_size": 4, "add_domain_tokens": 0},
}
"""Per objective; the rest is shared (block 128, linear decay, 10 % warmup, float32)."""


def python_docs_prose() -> list[Document]:
    """General English held out from every run: the paragraphs of Python's reference documentation
    that read as prose (no grammar rules or code), one document per topic."""
    from pydoc_data.topics import topics

    documents = []
    for name, text in sorted(topics.items()):
        paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
        prose = [
            p
            for p in paragraphs
            if len(p) > 80
            and "::=" not in p
            and ">>>" not in p
            and sum(c.isalpha() or c == " " for c in p) > 0.9 * len(p)
        ]
        if prose:
            documents.append(Document(f"pydoc-{name}", "\n".join(prose), "python-docs"))
    return documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="$VFM_DATA_DIR (finqa/, tatqa/, bddx/, ...)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bases", nargs="+", default=["all-minilm-l6-v2", "smollm2-135m-instruct"])
    parser.add_argument("--objectives", nargs="+", default=["mlm", "clm"], help="one per base")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--mix", type=float, default=0.2, help="share of out-of-domain tokens in training")
    parser.add_argument("--eval-blocks", type=int, default=48)
    parser.add_argument("--pseudo-blocks", type=int, default=2)
    parser.add_argument("--lora-ranks", nargs="+", type=int, help="one per base; 0 trains every weight (default)")
    args = parser.parse_args()

    real = load_real_data(args.data_dir)
    documents = finance_documents(real.train)
    documents += [doc for path in sorted((args.data_dir / "phrasebank").glob("*.zip")) for doc in read_phrasebank(path)]
    held_out = finance_documents(real.finqa_dev + real.tatqa_held_out)
    domain = build_corpus(documents, exclude_documents=held_out)
    csv = args.data_dir / "bddx" / "BDD-X-Annotations_v1.csv"
    general = driving_text_corpus(bddx_csv=csv, bddx_split_file=args.data_dir / "bddx" / "train.txt")
    general_held = driving_text_corpus(bddx_csv=csv, bddx_split_file=args.data_dir / "bddx" / "val.txt")

    general_english = python_docs_prose()
    sets = ("finance_held_out", "out_of_domain_held_out", "general_english_held_out")
    rows = {}
    ranks = args.lora_ranks or [0] * len(args.bases)
    for base, objective, rank in zip(args.bases, args.objectives, ranks, strict=True):
        recipe = RECIPES[objective] | ({"lora_rank": rank, "lora_alpha": 2 * rank, "lr": 2e-4} if rank else {})
        name = base.replace("/", "--") + (f"-lora{rank}" if rank else "")
        settings = TextAdaptSettings(
            max_steps=args.steps,
            objective=objective,
            block_size=128,
            warmup_steps=max(1, args.steps // 10),
            precision="32",
            mix_ratio_general=args.mix,
            heldout_fraction=0.0,
            eval_max_blocks=args.eval_blocks,
            pseudo_perplexity_blocks=args.pseudo_blocks,
            checkpoint_every_n_steps=50,
            **recipe,
        )
        started = time.time()
        metrics = adapt_text_model(
            base,
            domain,
            build_corpus(general),
            settings,
            args.out / name,
            progress=False,
            extra_eval={
                "finance_held_out": held_out,
                "out_of_domain_held_out": general_held,
                "general_english_held_out": general_english,
            },
        )
        rows[name] = {
            "objective": metrics["objective"],
            "perplexity": {k: metrics["perplexity"][k] for k in sets},
            "pseudo_perplexity": {k: v for k, v in metrics.get("pseudo_perplexity", {}).items() if k in sets},
            "parameters": metrics["train"]["parameters"],
            "tokens_per_s": metrics["train"]["tokens_per_s"],
            "train_seconds": metrics["train"]["seconds"],
            "wall_seconds": round(time.time() - started, 1),
            "domain_tokens_added": len(metrics["vocabulary"].get("added", [])),
            "recipe": recipe | {"steps": args.steps, "mix": args.mix},
        }
    print(json.dumps(rows, indent=2))
    print(
        "\n| base | objective | trained parameters | finance ppl before → after | out-of-domain ppl before → after | "
        "general English ppl before → after | finance pseudo-ppl before → after | tokens/s | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        ppl = [row["perplexity"][k] for k in sets]
        pseudo = row["pseudo_perplexity"].get("finance_held_out")
        pseudo_text = f"{pseudo['before']} → {pseudo['after']}" if pseudo else "–"
        share = row["parameters"]["trained"] / row["parameters"]["total"]
        print(
            f"| {name} | {row['objective']} | {row['parameters']['trained'] / 1e6:.1f} M ({100 * share:.1f} %) | "
            + " | ".join(f"{p['before']} → {p['after']}" for p in ppl)
            + f" | {pseudo_text} | {row['tokens_per_s']} | {row['wall_seconds']} |"
        )
    print(
        f"\n# reproduce: python benchmarks/text_adaptation_real_bases.py --data-dir {args.data_dir} --out {args.out} "
        f"--bases {' '.join(args.bases)} --objectives {' '.join(args.objectives)} --lora-ranks {' '.join(map(str, ranks))} --steps {args.steps} "
        f"--mix {args.mix}"
    )


if __name__ == "__main__":
    main()
