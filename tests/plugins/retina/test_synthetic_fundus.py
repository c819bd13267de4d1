"""The procedural fundus generator: shapes, determinism, anatomy and grade signal."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.retina.synthetic import NUM_GRADES, balanced_grades, generate, render_fundus


@pytest.mark.parametrize("size", [16, 28, 64, 224])
def test_shapes_and_dtypes(size: int) -> None:
    images, labels = generate(5, seed=3, image_size=size)
    assert images.shape == (5, size, size, 3)
    assert images.dtype == np.uint8
    assert labels.shape == (5,)
    assert labels.dtype == np.int64
    assert set(labels.tolist()) <= set(range(NUM_GRADES))


def test_deterministic_and_prefix_consistent() -> None:
    images_a, labels_a = generate(10, seed=7, image_size=32)
    images_b, labels_b = generate(10, seed=7, image_size=32)
    prefix_images, prefix_labels = generate(5, seed=7, image_size=32)
    np.testing.assert_array_equal(images_a, images_b)
    np.testing.assert_array_equal(labels_a, labels_b)
    np.testing.assert_array_equal(images_a[:5], prefix_images)
    np.testing.assert_array_equal(labels_a[:5], prefix_labels)
    other, _ = generate(5, seed=8, image_size=32)
    assert not np.array_equal(other, prefix_images)


def test_balanced_labels() -> None:
    labels = balanced_grades(50, seed=1)
    assert np.bincount(labels, minlength=NUM_GRADES).tolist() == [10] * NUM_GRADES
    blocks = labels.reshape(10, NUM_GRADES)
    assert all(sorted(block) == list(range(NUM_GRADES)) for block in blocks.tolist())
    assert any(block != list(range(NUM_GRADES)) for block in blocks.tolist())  # shuffled
    np.testing.assert_array_equal(generate(12, seed=1, image_size=16)[1], labels[:12])


def test_explicit_grades() -> None:
    _, labels = generate(3, image_size=16, grades=[4, 0, 2])
    assert labels.tolist() == [4, 0, 2]
    with pytest.raises(VfmError, match=r"grades"):
        generate(2, image_size=16, grades=[1])
    with pytest.raises(VfmError, match=r"0-4"):
        generate(1, image_size=16, grades=[5])


def test_invalid_arguments() -> None:
    with pytest.raises(VfmError, match=r"image_size"):
        generate(1, image_size=8)
    with pytest.raises(VfmError, match=r"grade 7"):
        render_fundus(np.random.default_rng(0), 7, 32)


def test_black_outside_field_of_view_and_bright_inside() -> None:
    images, _ = generate(10, seed=2, image_size=64)
    corners = images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.max() == 0
    centre = images[:, 24:40, 24:40].astype(np.float64)
    assert centre.mean() > 40
    assert (centre[..., 0] > centre[..., 2]).mean() > 0.9  # orange-red retina


def test_same_base_different_grades() -> None:
    base = render_fundus(np.random.default_rng([5, 0]), 0, 64)
    again = render_fundus(np.random.default_rng([5, 0]), 0, 64)
    np.testing.assert_array_equal(base, again)
    graded = render_fundus(np.random.default_rng([5, 0]), 3, 64)
    changed = np.abs(graded.astype(np.int16) - base).max(axis=-1) > 20
    assert 0 < changed.mean() < 0.5


@pytest.mark.parametrize("size", [28, 64])
def test_higher_grades_have_more_lesion_pixels(size: int) -> None:
    fractions = np.zeros((8, NUM_GRADES))
    for sample in range(8):
        base = render_fundus(np.random.default_rng([11, sample]), 0, size).astype(np.int16)
        for grade in range(NUM_GRADES):
            image = render_fundus(np.random.default_rng([11, sample]), grade, size)
            fractions[sample, grade] = (np.abs(image - base).max(axis=-1) > 20).mean()
    means = fractions.mean(axis=0)
    assert means[0] == 0
    assert np.all(np.diff(means) > 0), means


def test_large_render_is_fast() -> None:
    start = time.perf_counter()
    image = render_fundus(np.random.default_rng(0), 4, 512)
    elapsed = time.perf_counter() - start
    assert image.shape == (512, 512, 3)
    assert image[0, 0].max() == 0
    assert elapsed < 1.5


def test_small_batch_is_fast() -> None:
    generate(1, image_size=64)
    start = time.perf_counter()
    generate(64, image_size=64)
    assert time.perf_counter() - start < 2.0
