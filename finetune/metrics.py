"""Classification metrics as plain Python numbers, from torchmetrics' functional API.

Classes absent from ``y_true`` do not crash anything:

- their one-vs-rest AUROC and average precision are undefined (no positives), reported as
  ``None`` in ``per_class_auroc``/``per_class_aupr``; ``auroc_macro_ovr`` is the mean over the
  classes that have both positives and negatives, ``aupr_macro_ovr`` over the classes that have
  positives (``None`` when there are none);
- their F1 is 0 (torchmetrics' zero-division convention);
- ``qwk`` is ``None`` when it is undefined (truth and prediction both a single class).

No value is ever NaN: every result survives ``json.dumps(..., allow_nan=False)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_average_precision,
    multiclass_calibration_error,
    multiclass_cohen_kappa,
    multiclass_f1_score,
)

from vfm.platform.errors import VfmError

MetricsFn = Callable[[np.ndarray, np.ndarray, "list[str] | None"], dict]
"""``metrics(y_true int [N], probs float [N, C], label_names) -> dict``: the ``metrics`` component."""

ECE_BINS = 15
"""Equal-width confidence bins of the expected calibration error (and the reliability diagram)."""


def _number(value: torch.Tensor) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _per_class(values: torch.Tensor, defined: torch.Tensor, names: list[str]) -> dict[str, float | None]:
    """values, defined: [C] -> {name: float, or None where not defined}."""
    return {name: (float(v) if ok else None) for name, v, ok in zip(names, values, defined)}


def _macro(values: torch.Tensor, defined: torch.Tensor) -> float | None:
    """Mean of values [C] over the defined classes, None when there are none."""
    return float(values[defined].mean()) if defined.any() else None


def check_scores(
    y_true, probs, label_names: list[str] | None, where: str = "classification_metrics"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """-> (target long [N], preds float32 [N, C], C names), or VfmError naming the mismatch at ``where``."""
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long).reshape(-1)  # [N]
    preds = torch.as_tensor(np.asarray(probs), dtype=torch.float32)  # [N, C]
    if preds.ndim != 2 or preds.shape[0] != target.shape[0] or target.numel() == 0:
        raise VfmError(
            f"probs {list(preds.shape)} do not match {target.numel()} labels",
            where=where,
            fix="pass probs [N, C] for N labels",
        )
    num_classes = preds.shape[1]
    names = list(label_names) if label_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise VfmError(
            f"{len(names)} label names for {num_classes} classes",
            where=where,
            fix="give one name per probability column",
        )
    if target.min() < 0 or target.max() >= num_classes:
        raise VfmError(f"labels must lie in 0..{num_classes - 1}", where=where)
    return target, preds, names


def expected_calibration_error(target: torch.Tensor, preds: torch.Tensor) -> float:
    """ECE of the top-class confidence, ``ECE_BINS`` equal bins, L1. target long [N], preds [N, C]."""
    return float(multiclass_calibration_error(preds, target, preds.shape[1], n_bins=ECE_BINS, norm="l1"))


def classification_metrics(y_true, probs, label_names: list[str] | None = None) -> dict:
    """Score class probabilities against integer labels.

    Args:
        y_true: int [N], labels in 0..C-1.
        probs: float [N, C], class probabilities (rows summing to 1).
        label_names: C names used as keys of the per-class dicts (default "0".."C-1").

    Returns:
        ``{"auroc_macro_ovr", "aupr_macro_ovr", "accuracy", "qwk", "ece", "per_class_f1",
        "per_class_auroc", "per_class_aupr", "n"}``: ``aupr`` is one-vs-rest average precision,
        ``qwk`` the quadratic-weighted Cohen kappa of the arg-max predictions, ``ece`` the
        expected calibration error of the top-class confidence (``ECE_BINS`` bins, L1).
    """
    target, preds, names = check_scores(y_true, probs, label_names)
    n, num_classes = preds.shape
    counts = torch.bincount(target, minlength=num_classes)  # [C]
    has_both = (counts > 0) & (counts < n)  # [C], classes with positives and negatives
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No (positive|negative) samples in targets")
        warnings.filterwarnings("ignore", "Average precision score for one or more classes was `nan`")
        auroc = multiclass_auroc(preds, target, num_classes, average="none")  # [C]
        aupr = multiclass_average_precision(preds, target, num_classes, average="none")  # [C]
    f1 = multiclass_f1_score(preds, target, num_classes, average=None)  # [C]
    return {
        "auroc_macro_ovr": _macro(auroc, has_both),
        "aupr_macro_ovr": _macro(aupr, counts > 0),
        "accuracy": float(multiclass_accuracy(preds, target, num_classes, average="micro")),
        "qwk": _number(multiclass_cohen_kappa(preds.argmax(dim=1), target, num_classes, weights="quadratic")),
        "ece": expected_calibration_error(target, preds),
        "per_class_f1": {name: float(v) for name, v in zip(names, f1)},
        "per_class_auroc": _per_class(auroc, has_both, names),
        "per_class_aupr": _per_class(aupr, counts > 0, names),
        "n": int(n),
    }
