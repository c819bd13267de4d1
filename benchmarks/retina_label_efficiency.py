"""Label-efficiency study on real fundus photographs (RetinaMNIST, 28x28, DR grade 0-4).

Protocol (the official test split is held out and not available here):

- the official ``train`` split (1,080) is divided, stratified with a fixed seed, into a training
  pool (958) and a model-selection split (122; 120 requested, rounded up per class);
- the official ``val`` split (120) is the held-out test set: used once per run, never for selection;
- MAE pretraining sees the unlabelled images of train + val (as the issue asks);
- for each label fraction and seed, three models are fine-tuned on the same stratified subset of the
  pool: the MAE-pretrained ViT, the same ViT from scratch, and a small CNN;
- every run goes through the platform's own pipeline (the code ``vfm pretrain/finetune/evaluate``
  runs); results are written to ``<out>/results.json`` and a markdown table to stdout;
- other fine-tuning recipes run beside the default under a name: ``--recipe NAME --set
  finetune.mode=linear`` (repeatable ``--set``, applied to every model of the call after the
  per-model defaults). The table shows each recipe's mean selection AUROC, the number to choose a
  recipe by; the test columns are for reading once the choice is made;
- ``--set pretrain.KEY=VALUE`` changes the MAE pretraining of ``--out`` (e.g. ``pretrain.mask_ratio=0.5``):
  one pretraining per output folder, so a folder refuses pretraining overrides other than its own.

Usage::

    python benchmarks/retina_label_efficiency.py --data $VFM_DATA_DIR/retinamnist/retinamnist_trainval.npz \\
        --out runs/retina-study
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from vfm.finetune.image_pipeline import ImageClassificationPipeline
from vfm.finetune.label_fraction import stratified_subset
from vfm.platform.config import deep_merge, parse_override
from vfm.platform.fileio import atomic_write_json
from vfm.platform.registry import get_plugin

MEAN = [0.40, 0.24, 0.16]  # RetinaMNIST train-image channel statistics (unlabelled)
STD = [0.30, 0.20, 0.15]
SELECTION_SIZE = 120


def write_study_npz(source: Path, out: Path, seed: int) -> Path:
    """train (pool) / select / test arrays derived from the official train/val splits."""
    data = np.load(source)
    images, labels = data["train_images"], data["train_labels"].reshape(-1)
    select = stratified_subset(labels, SELECTION_SIZE / len(labels), seed=seed)
    pool = np.setdiff1d(np.arange(len(labels)), select)
    path = out / "study.npz"
    np.savez(
        path,
        train_images=images[pool],
        train_labels=labels[pool],
        select_images=images[select],
        select_labels=labels[select],
        test_images=data["val_images"],
        test_labels=data["val_labels"].reshape(-1),
        all_images=np.concatenate([images, data["val_images"]]),
    )
    return path


def study_config(npz: Path, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "data": {"source": str(npz), "train_split": "train", "val_split": "select"},
        "preprocessing": {"image_size": 28, "mean": MEAN, "std": STD, "crop_fov": False},
        "pretrain": {
            "preset": "tiny",
            "max_steps": args.pretrain_steps,
            "batch_size": 128,
            "base_lr": 1.5e-3,
            "warmup_steps": 100,
            "precision": "32",
            "checkpoint_every_n_steps": 200,
            "augment": args.pretrain_augment,
            "figure_every_n_epochs": 25,
        },
        "finetune": {"batch_size": 32, "precision": "32", "max_epochs": args.epochs},
    }


def recipe_of(result: dict[str, Any]) -> str:
    """The recipe a result belongs to (results written before recipes existed are the default)."""
    return result.get("recipe", "default")


def epochs_for(n_train: int, batch_size: int, min_epochs: int, min_steps: int) -> int:
    """Enough epochs that small label fractions still get ``min_steps`` optimiser steps."""
    return max(min_epochs, math.ceil(min_steps / max(1, n_train // batch_size)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="retinamnist_trainval.npz")
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["mae", "scratch", "cnn"], choices=["mae", "scratch", "cnn"])
    parser.add_argument("--pretrain-steps", type=int, default=3000)
    parser.add_argument(
        "--pretrain-augment", action="store_true", help="MAE's random resized crop + flip during pretraining"
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--min-steps", type=int, default=400)
    parser.add_argument("--recipe", default="default", help="name under which this call's fine-tuning runs are kept")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="finetune.* override of this recipe (e.g. finetune.layer_decay=0.5), or pretrain.* "
        "override of this folder's MAE pretraining (repeatable)",
    )
    parser.add_argument("--curve", type=Path, help="also write the label-efficiency curve (PNG) of the default recipe")
    parser.add_argument("--report-only", action="store_true", help="only print the table (and curve) of <out>")
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
        print(render_table(results))
        if args.curve:
            plot_curve(results, args.curve)
        return

    recipe: dict[str, Any] = {}
    for text in args.overrides:
        recipe = deep_merge(recipe, parse_override(text))
    if set(recipe) - {"finetune", "pretrain"}:
        raise SystemExit(f"--set takes finetune.KEY=VALUE or pretrain.KEY=VALUE, not {sorted(set(recipe))}")
    pretrain_overrides = {
        "pretrain": recipe.pop("pretrain", {}),
        "pretrain_steps": args.pretrain_steps,
        "pretrain_augment": args.pretrain_augment,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = args.out / "pretrain_settings.json"
    if stamp.exists() and (earlier := json.loads(stamp.read_text())) != pretrain_overrides:
        raise SystemExit(
            f"{args.out} was pretrained with {earlier}, not {pretrain_overrides}: "
            "use a new --out for another pretraining"
        )
    atomic_write_json(stamp, pretrain_overrides)
    npz = write_study_npz(args.data, args.out, seed=0)
    plugin = get_plugin("retina")
    pipeline = ImageClassificationPipeline(plugin)
    cnn_pipeline = ImageClassificationPipeline(plugin.with_components(model="vfm.finetune.small_cnn:build_small_cnn"))
    base = deep_merge(study_config(npz, args), {"pretrain": pretrain_overrides["pretrain"]})

    started = time.perf_counter()
    pre_config = deep_merge(base, {"data": {"train_split": "all", "val_split": None}})
    pretrain = pipeline.pretrain(pre_config, args.out / "pretrain")
    encoder = args.out / "pretrain" / "encoder.safetensors"
    pool_labels = np.load(npz)["train_labels"]

    results_path = args.out / "results.json"
    results: list[dict[str, Any]] = json.loads(results_path.read_text()) if results_path.exists() else []
    done = {(recipe_of(r), r["model"], r["fraction"], r["seed"]) for r in results}
    for fraction in args.fractions:
        for seed in args.seeds:
            n_used = len(stratified_subset(pool_labels, fraction, seed=seed)) if fraction < 1 else len(pool_labels)
            for model in args.models:
                if (args.recipe, model, fraction, seed) in done:
                    continue
                prefix = "" if args.recipe == "default" else f"{args.recipe}-"
                run = args.out / f"{prefix}{model}-f{fraction}-s{seed}"
                finetune = {
                    "label_fraction": fraction,
                    "seed": seed,
                    "max_epochs": epochs_for(n_used, 32, args.epochs, args.min_steps),
                    "pretrained": str(encoder) if model == "mae" else None,
                }
                if model == "cnn":
                    finetune |= {"layer_decay": 1.0, "drop_path": 0.0, "base_lr": 2e-3}
                if model == "scratch":
                    finetune |= {"layer_decay": 1.0}
                config = deep_merge(deep_merge(base, {"finetune": finetune}), recipe)
                runner = cnn_pipeline if model == "cnn" else pipeline
                t0 = time.perf_counter()
                val = runner.finetune(config, run, progress=False)
                test = runner.evaluate(run, source=str(npz), split="test")
                results.append(
                    {
                        "recipe": args.recipe,
                        "overrides": args.overrides,
                        "model": model,
                        "fraction": fraction,
                        "seed": seed,
                        "n_train": n_used,
                        "selection": {k: val[k] for k in ("auroc_macro_ovr", "accuracy", "qwk")},
                        "test": {
                            k: test.get(k) for k in ("auroc_macro_ovr", "aupr_macro_ovr", "accuracy", "qwk", "ece")
                        },
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                )
                atomic_write_json(results_path, results)
                print(json.dumps(results[-1]), flush=True)
    summary = {"pretrain": pretrain, "seconds": round(time.perf_counter() - started, 1), "runs": len(results)}
    atomic_write_json(args.out / "summary.json", summary)
    print(render_table(results))
    if args.curve:
        plot_curve(results, args.curve)


def plot_curve(results: list[dict[str, Any]], path: Path) -> None:
    """Test AUROC (mean ± sd over seeds) against the label fraction, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    results = [r for r in results if recipe_of(r) == "default"]
    for model, label in (("mae", "ViT, MAE-pretrained"), ("scratch", "ViT, from scratch"), ("cnn", "small CNN")):
        fractions = sorted({r["fraction"] for r in results if r["model"] == model})
        if not fractions:
            continue
        scores = [
            [r["test"]["auroc_macro_ovr"] for r in results if r["model"] == model and r["fraction"] == f]
            for f in fractions
        ]
        means = [float(np.mean(v)) for v in scores]
        sds = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in scores]
        axis.errorbar([f * 100 for f in fractions], means, yerr=sds, marker="o", capsize=3, label=label)
    axis.set_xscale("log")
    axis.set_xlabel("labelled training images (% of the 958-image pool)")
    axis.set_ylabel("macro AUROC on the held-out split")
    axis.set_title("RetinaMNIST label efficiency (mean ± sd over seeds)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def render_table(results: list[dict[str, Any]]) -> str:
    """Markdown: per recipe, model and fraction, the mean selection AUROC and mean ± sd over seeds of
    test AUROC / accuracy / QWK."""
    lines = [
        "| labels | recipe | model | n | seeds | selection AUROC | test AUROC | test accuracy | test QWK |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    models = ["mae", "scratch", "cnn"]
    keys = sorted(
        {(r["fraction"], recipe_of(r), r["model"]) for r in results},
        key=lambda k: (k[0], k[1] != "default", k[1], models.index(k[2])),
    )
    for fraction, recipe, model in keys:
        runs = [r for r in results if (r["fraction"], recipe_of(r), r["model"]) == (fraction, recipe, model)]
        cells = [f"{np.mean([r['selection']['auroc_macro_ovr'] for r in runs]):.3f}"]
        for metric in ("auroc_macro_ovr", "accuracy", "qwk"):
            values = np.array([r["test"][metric] for r in runs if r["test"][metric] is not None], dtype=float)
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}")
        lines.append(
            f"| {fraction:.0%} | {recipe} | {model} | {runs[0]['n_train']} | {len(runs)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
