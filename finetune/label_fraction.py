"""Label-efficiency subsets: a stratified, seeded share of the training labels.

Each class gets its own permutation, seeded by ``(seed, class)``, and contributes the first
``ceil(fraction * count)`` of it (at least ``min_per_class``). The permutation does not depend on
the fraction, so for one seed the subsets are nested: the 5 % subset lies inside the 10 % one,
which lies inside the 25 % one, and a label-efficiency curve adds labels rather than resampling.
"""

from __future__ import annotations

import math

import numpy as np

from vfm.platform.errors import VfmError

_ROUNDING = 1e-9  # 0.07 * 100 is 7.000000000000001 in floating point: still 7 images


def stratified_subset(labels, fraction: float, *, seed: int, min_per_class: int = 1) -> np.ndarray:
    """Indices of a stratified ``fraction`` of ``labels``.

    Args:
        labels: int [N], class of each sample (any integers).
        fraction: share of each class to keep, in (0, 1]; 1 keeps everything.
        seed: fixes the per-class permutations (same seed, nested subsets).
        min_per_class: at least this many of every class present in ``labels`` (all of a class
            smaller than that).

    Returns:
        int64 [n], sorted indices into ``labels``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise VfmError(
            f"labels must be a non-empty 1-D integer array, got {labels.dtype} {list(labels.shape)}",
            where="stratified_subset(labels)",
            fix="pass int labels [N]",
        )
    if not 0.0 < fraction <= 1.0:
        raise VfmError(
            f"label fraction {fraction!r} is not in (0, 1]",
            where="stratified_subset(fraction)",
            fix="use e.g. 0.05 for 5 % of the labels, 1.0 for all",
        )
    if min_per_class < 1:
        raise VfmError(
            f"min_per_class {min_per_class!r} is below 1",
            where="stratified_subset(min_per_class)",
            fix="keep at least one sample per class",
        )
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)  # [count_c]
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(cls) & 0xFFFFFFFF])
        keep = max(min_per_class, math.ceil(fraction * len(members) - _ROUNDING))
        chosen.append(members[rng.permutation(len(members))[:keep]])
    return np.sort(np.concatenate(chosen)).astype(np.int64)
