"""Weighted logistic regression with an L2 penalty, fitted by Newton's method (numpy).

The evidence retriever and the beam re-ranker both score a few hand-made features with it.
Features are standardised before fitting; column 0 is a constant bias, left unstandardised and
unpenalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def fit_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, *, l2: float = 1.0,
                 iterations: int = 25) -> LogisticModel:
    """Fit ``y`` ``[N]`` (0/1) on ``x`` ``[N, F]`` (column 0 constant), each row weighted by
    ``weights`` ``[N]`` (default 1)."""
    w = np.ones(len(y)) if weights is None else weights
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
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
