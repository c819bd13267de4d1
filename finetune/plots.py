"""Validation plots of a classifier: ROC curves, confusion matrix, reliability diagram.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display
needed) and written atomically as PNG.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torchmetrics.functional.classification import multiclass_auroc, multiclass_roc

from vfm.finetune.metrics import ECE_BINS, check_scores, expected_calibration_error
from vfm.platform.fileio import atomic_write_bytes


def _save(fig: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def roc_figure(target: torch.Tensor, preds: torch.Tensor, names: list[str]) -> Figure:
    """One-vs-rest ROC curve per class with its AUROC in the legend. target [N], preds [N, C]."""
    num_classes = preds.shape[1]
    counts = torch.bincount(target, minlength=num_classes)  # [C]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No (positive|negative) samples in targets")
        fpr, tpr, _ = multiclass_roc(preds, target, num_classes)  # C curves each
        auroc = multiclass_auroc(preds, target, num_classes, average="none")  # [C]
    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    for c, name in enumerate(names):
        if 0 < counts[c] < len(target):
            ax.plot(fpr[c].numpy(), tpr[c].numpy(), label=f"{name} (AUROC {float(auroc[c]):.3f})")
        else:
            ax.plot([], [], label=f"{name} (AUROC undefined: {'no' if counts[c] == 0 else 'only'} positives)")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="ROC, one class vs rest",
    )
    ax.legend(loc="lower right", fontsize="small")
    return fig


def confusion_figure(target: torch.Tensor, preds: torch.Tensor, names: list[str]) -> Figure:
    """Counts of (true, predicted arg-max) pairs, coloured by the share of each true class (row)."""
    num_classes = preds.shape[1]
    pairs = target * num_classes + preds.argmax(dim=1)  # [N]
    counts = torch.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes).numpy()  # [C, C]
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # [C, C], rows sum to 1 (or 0)
    side = 2.5 + 0.6 * num_classes
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(num_classes), names, rotation=45, ha="right")
    ax.set_yticks(range(num_classes), names)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (colour: share of the true class)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def reliability_bins(target: torch.Tensor, preds: torch.Tensor, n_bins: int = ECE_BINS):
    """Top-class confidence in ``n_bins`` equal bins [k/B, (k+1)/B), the last one closed.

    Returns (mean confidence [B], accuracy [B], share of samples [B]) as numpy, 0 for empty bins.
    ``sum(share * |accuracy - confidence|)`` is torchmetrics' ECE, except that torchmetrics keeps
    confidences of exactly 1.0 in a bin of their own.
    """
    confidence, predicted = preds.max(dim=1)  # [N], [N]
    correct = (predicted == target).to(confidence.dtype)  # [N]
    edges = torch.linspace(0, 1, n_bins + 1, dtype=confidence.dtype)  # [B + 1]
    index = (torch.bucketize(confidence, edges, right=True) - 1).clamp(max=n_bins - 1)  # [N]
    count = torch.zeros(n_bins).index_add_(0, index, torch.ones_like(confidence))  # [B]
    conf = torch.zeros(n_bins).index_add_(0, index, confidence) / count.clamp(min=1)  # [B]
    acc = torch.zeros(n_bins).index_add_(0, index, correct) / count.clamp(min=1)  # [B]
    return conf.numpy(), acc.numpy(), (count / count.sum()).numpy()


def reliability_figure(target: torch.Tensor, preds: torch.Tensor) -> Figure:
    """Accuracy against confidence per bin (bar width: the bin), with the ECE of ``metrics.json`` in the title."""
    conf, acc, share = reliability_bins(target, preds)
    ece = expected_calibration_error(target, preds)
    n_bins = len(conf)
    centres = (np.arange(n_bins) + 0.5) / n_bins  # [B]
    filled = share > 0
    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    ax.bar(centres[filled], acc[filled], width=1 / n_bins, edgecolor="black", label="accuracy")
    ax.scatter(conf[filled], acc[filled], color="tab:orange", zorder=3, s=12, label="mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    ax.set(
        xlabel="confidence (top-class probability)",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"Reliability, ECE {ece:.3f} ({n_bins} bins)",
    )
    ax.legend(loc="upper left", fontsize="small")
    return fig


def write_classification_plots(y_true, probs, label_names: list[str] | None, out_dir: str | Path) -> list[Path]:
    """Write ``roc_curves.png``, ``confusion_matrix.png`` and ``reliability_diagram.png`` into ``out_dir``.

    y_true: int [N] in 0..C-1; probs: float [N, C]; label_names: C names (default "0".."C-1").
    Returns the written paths, in that order.
    """
    target, preds, names = check_scores(y_true, probs, label_names, where="write_classification_plots")
    out_dir = Path(out_dir)
    figures = {
        "roc_curves.png": roc_figure(target, preds, names),
        "confusion_matrix.png": confusion_figure(target, preds, names),
        "reliability_diagram.png": reliability_figure(target, preds),
    }
    return [_save(fig, out_dir / name) for name, fig in figures.items()]
