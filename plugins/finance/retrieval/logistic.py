"""Weighted logistic regression with an L2 penalty, fitted by Newton's method (numpy), and its file.

The evidence retriever, the beam re-ranker and the table lookup score features with it.
Features are standardised before fitting (unless asked not to); column 0 is a constant bias,
left unstandardised and unpenalised. The retriever and the re-ranker store it the same way: a
JSON file with the scorer's ``format``, its feature names, ``weights``, ``mean`` and ``std``,
and any settings of its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json


@dataclass(frozen=True)
class LogisticModel:
    """A fitted scorer.

    Attributes:
        weights: ``[F]`` over standardised features.
        mean, std: ``[F]`` the standardisation (0 and 1 for the bias column).
    """

    weights: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``[N]`` log-odds of ``x`` ``[N, F]``."""
        return ((x - self.mean) / self.std) @ self.weights

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``[N]`` probabilities of ``x`` ``[N, F]``."""
        return 1.0 / (1.0 + np.exp(-self.logits(x)))


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    l2: float = 1.0,
    iterations: int = 25,
    standardise: bool = True,
) -> LogisticModel:
    """Fit ``y`` ``[N]`` (0/1) on ``x`` ``[N, F]`` (column 0 constant), each row weighted by
    ``weights`` ``[N]`` (default 1). ``standardise=False`` keeps the features as they are: for
    many 0/1 word features, where standardising would give a rare word a large unpenalised
    effect (a word in 1 of 1,000 questions is scaled up 30 times)."""
    w = np.ones(len(y)) if weights is None else weights
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    if not standardise:
        mean, std = np.zeros(x.shape[1]), np.ones(x.shape[1])
    mean[0], std[0] = 0.0, 1.0
    z = (x - mean) / std
    beta = np.zeros(z.shape[1])
    penalty = l2 * np.eye(z.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ beta)))
        gradient = z.T @ (w * (p - y)) + penalty @ beta
        hessian = (z * (w * p * (1 - p))[:, None]).T @ z + penalty + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticModel(beta, mean, std)


def logistic_to_json(model: LogisticModel) -> dict[str, list[float]]:
    """``{"weights", "mean", "std"}`` as lists, for a JSON file."""
    return {"weights": model.weights.tolist(), "mean": model.mean.tolist(), "std": model.std.tolist()}


def logistic_from_json(data: Any) -> LogisticModel:
    """The inverse of :func:`logistic_to_json`.

    Raises:
        KeyError, TypeError, ValueError: ``data`` is not such a mapping.
    """
    return LogisticModel(*(np.asarray(data[key], dtype=np.float64) for key in ("weights", "mean", "std")))


def save_logistic(
    path: str | Path, model: LogisticModel, *, fmt: str, features: Sequence[str], **settings: Any
) -> Path:
    """Write ``model`` with its ``fmt``, feature names and ``settings`` as JSON (atomically)."""
    return atomic_write_json(path, {"format": fmt, "features": list(features), **settings, **logistic_to_json(model)})


def read_scorer_json(
    path: str | Path, fmt: str, *, what: str, written_by: str, refit: str, expected: dict[str, Any]
) -> dict[str, Any]:
    """Read a scorer's JSON file, checked: its ``format`` is ``fmt`` and each key of ``expected``
    (feature names, vocabularies of cues) holds that value.

    Args:
        what: the scorer's name, for the messages (``"retriever"``).
        written_by: the fix for an unreadable file.
        refit: the fix for a file of another format or other features.

    Raises:
        VfmError: the file is missing, unreadable, of another format, or made for other features.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise VfmError(f"cannot read the {what}: {err}", where=str(path), fix=written_by) from None
    if not isinstance(data, dict) or data.get("format") != fmt or any(data.get(k) != v for k, v in expected.items()):
        raise VfmError(f"the {what} file is for another version or other features", where=str(path), fix=refit)
    return data


def load_logistic(
    path: str | Path, *, fmt: str, features: Sequence[str], what: str, written_by: str, refit: str
) -> tuple[LogisticModel, dict[str, Any]]:
    """Read a file written by :func:`save_logistic`: ``(model, the whole file's content)``; the
    arguments and errors are those of :func:`read_scorer_json`."""
    data = read_scorer_json(
        path, fmt, what=what, written_by=written_by, refit=refit, expected={"features": list(features)}
    )
    return logistic_from_json(data), data
