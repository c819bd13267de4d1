"""stratified_subset: per-class shares, determinism, nesting across fractions, bad input."""

import numpy as np
import pytest

from vfm.finetune.label_fraction import stratified_subset
from vfm.platform.errors import VfmError

LABELS = np.repeat([0, 1, 2, 7], [100, 40, 7, 1])  # imbalanced; class 7 has a single sample


def test_each_class_keeps_its_rounded_up_share_and_at_least_one():
    idx = stratified_subset(LABELS, 0.1, seed=0)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    counts = dict(zip(*np.unique(LABELS[idx], return_counts=True)))
    assert counts == {0: 10, 1: 4, 2: 1, 7: 1}
    assert len(stratified_subset(LABELS, 0.07, seed=0)) == 7 + 3 + 1 + 1  # 0.07 * 100 is 7, not 8


def test_min_per_class_and_the_whole_set():
    counts = np.bincount(LABELS[stratified_subset(LABELS, 0.01, seed=3, min_per_class=5)])
    assert counts[[0, 1, 2, 7]].tolist() == [5, 5, 5, 1]  # a class smaller than 5 is kept whole
    np.testing.assert_array_equal(stratified_subset(LABELS, 1.0, seed=3), np.arange(len(LABELS)))


def test_deterministic_per_seed_and_nested_across_fractions():
    a, b = stratified_subset(LABELS, 0.25, seed=1), stratified_subset(LABELS, 0.25, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, stratified_subset(LABELS, 0.25, seed=2))
    subsets = [set(stratified_subset(LABELS, f, seed=1)) for f in (0.05, 0.1, 0.25, 0.5, 1.0)]
    assert all(small <= large for small, large in zip(subsets, subsets[1:]))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(VfmError, match="not in \\(0, 1\\]"):
        stratified_subset(LABELS, fraction, seed=0)


def test_bad_labels_are_refused():
    with pytest.raises(VfmError, match="1-D integer"):
        stratified_subset(np.zeros((2, 2), dtype=int), 0.5, seed=0)
    with pytest.raises(VfmError, match="1-D integer"):
        stratified_subset(np.array([0.5, 1.0]), 0.5, seed=0)
    with pytest.raises(VfmError, match="min_per_class"):
        stratified_subset(LABELS, 0.5, seed=0, min_per_class=0)
