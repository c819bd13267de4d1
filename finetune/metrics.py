"""Classification metrics as plain Python numbers, from torchmetrics' functional API.

Classes absent from ``y_true`` do not crash anything:

- their one-vs-rest AUROC is undefined (no positives), reported as ``None`` in
  ``per_class_auroc`` and left out of ``auroc_macro_ovr``, the mean over the classes that
  have both positives and negatives (``None`` when no class has);
- their F1 is 0 (torchmetrics' zero-division convention);
- ``qwk`` is ``None`` when it is undefined (truth and prediction both a single class).
"""

from __future__ import annotations

import math
from collections.abc import Callable
import warnings

import numpy as np
import torch
from torchmetrics.functional.classification import (multiclass_accuracy, multiclass_auroc,
                                                    multiclass_cohen_kappa, multiclass_f1_score)

MetricsFn = Callable[[np.ndarray, np.ndarray, "list[str] | None"], dict]
"""``metrics(y_true int [N], probs float [N, C], label_names) -> dict``: the ``metrics`` component."""

from vfm.platform.errors import VfmError


def _number(value: torch.Tensor) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def classification_metrics(y_true, probs, label_names: list[str] | None = None) -> dict:
    """Score class probabilities against integer labels.

    Args:
        y_true: int [N], labels in 0..C-1.
        probs: float [N, C], class probabilities (rows summing to 1).
        label_names: C names used as keys of the per-class dicts (default "0".."C-1").

    Returns:
        ``{"auroc_macro_ovr", "accuracy", "qwk", "per_class_f1", "per_class_auroc", "n"}``;
        ``qwk`` is the quadratic-weighted Cohen kappa of the arg-max predictions.
    """
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long).reshape(-1)  # [N]
    preds = torch.as_tensor(np.asarray(probs), dtype=torch.float32)  # [N, C]
    if preds.ndim != 2 or preds.shape[0] != target.shape[0] or target.numel() == 0:
        raise VfmError(f"probs {list(preds.shape)} do not match {target.numel()} labels",
                       where="classification_metrics", fix="pass probs [N, C] for N labels")
    n, num_classes = preds.shape
    names = list(label_names) if label_names is not None else [str(c) for c in range(num_classes)]
    if len(names) != num_classes:
        raise VfmError(f"{len(names)} label names for {num_classes} classes", where="classification_metrics",
                       fix="give one name per probability column")
    if target.min() < 0 or target.max() >= num_classes:
        raise VfmError(f"labels must lie in 0..{num_classes - 1}", where="classification_metrics")

    counts = torch.bincount(target, minlength=num_classes)  # [C]
    defined = (counts > 0) & (counts < n)  # [C], classes with positives and negatives
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No (positive|negative) samples in targets")
        auroc = multiclass_auroc(preds, target, num_classes, average="none")  # [C]
    per_class_auroc = {name: (float(a) if ok else None) for name, a, ok in zip(names, auroc, defined)}
    f1 = multiclass_f1_score(preds, target, num_classes, average=None)  # [C]
    return {
        "auroc_macro_ovr": float(auroc[defined].mean()) if defined.any() else None,
        "accuracy": float(multiclass_accuracy(preds, target, num_classes, average="micro")),
        "qwk": _number(multiclass_cohen_kappa(preds.argmax(dim=1), target, num_classes, weights="quadratic")),
        "per_class_f1": {name: float(v) for name, v in zip(names, f1)},
        "per_class_auroc": per_class_auroc,
        "n": int(n),
    }
