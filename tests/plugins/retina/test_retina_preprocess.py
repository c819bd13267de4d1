"""Fundus preprocessing: field-of-view crop, resize, normalisation, batching."""

from __future__ import annotations

import numpy as np
import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.retina.preprocess import crop_to_field_of_view, preprocess
from vfm.plugins.retina.synthetic import generate

MEAN = (0.5, 0.3, 0.2)
STD = (0.25, 0.2, 0.15)


def preprocess_batch(
    images: np.ndarray | list[np.ndarray],
    *,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    crop_fov: bool = True,
) -> np.ndarray:
    """A batch of photographs (uint8 [N, H, W, 3] or a list of [H_i, W_i, 3]) -> float32 [N, 3, S, S],
    a malformed one named by its index (a test helper: the library preprocesses one image at a time)."""
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise VfmError(
            f"expected a batch uint8 [N, H, W, 3], got shape {images.shape}",
            where="preprocess",
            fix="stack the images along a new first axis, or pass a list of [H, W, 3] arrays",
        )
    batch = np.empty((len(images), 3, image_size, image_size), dtype=np.float32)
    for index, image in enumerate(images):
        try:
            batch[index] = preprocess(image, image_size=image_size, mean=mean, std=std, crop_fov=crop_fov)
        except VfmError as err:
            raise VfmError(err.what, where=f"batch item {index}", fix=err.fix) from err
    return batch


def _fundus(size: int = 48) -> np.ndarray:
    return generate(1, seed=4, image_size=size)[0][0]


def test_crop_removes_a_big_black_border() -> None:
    fundus = _fundus()
    framed = np.zeros((160, 200, 3), dtype=np.uint8)
    framed[50:98, 70:118] = fundus
    cropped = crop_to_field_of_view(framed)
    assert cropped.shape[0] == cropped.shape[1]
    assert 40 <= cropped.shape[0] <= 48
    again = crop_to_field_of_view(fundus)
    assert cropped.shape == again.shape


def test_crop_ignores_isolated_noise_in_the_border() -> None:
    framed = np.zeros((120, 120, 3), dtype=np.uint8)
    framed[36:84, 36:84] = _fundus()
    noisy = framed.copy()
    noisy[2, 5] = noisy[117, 110] = 255
    assert crop_to_field_of_view(noisy).shape == crop_to_field_of_view(framed).shape


def test_crop_pads_a_wide_image_to_a_centred_square() -> None:
    wide = np.zeros((30, 90, 3), dtype=np.uint8)
    wide[:, 20:70] = 200  # a 30 x 50 bright field touching top and bottom
    square = crop_to_field_of_view(wide)
    assert square.shape == (50, 50, 3)
    assert square[:10].max() == 0 and square[-10:].max() == 0
    assert square[10:40].min() == 200


def test_crop_of_an_all_black_image_is_unchanged() -> None:
    black = np.zeros((20, 30, 3), dtype=np.uint8)
    assert crop_to_field_of_view(black) is black


def test_preprocess_shape_dtype_and_normalisation() -> None:
    out = preprocess(_fundus(64), image_size=32, mean=MEAN, std=STD)
    assert out.shape == (3, 32, 32)
    assert out.dtype == np.float32
    assert out.flags["C_CONTIGUOUS"]
    flat = np.full((10, 10, 3), 255, dtype=np.uint8)
    ones = preprocess(flat, image_size=4, mean=MEAN, std=STD, crop_fov=False)
    np.testing.assert_allclose(ones[:, 0, 0], (1 - np.array(MEAN)) / np.array(STD), rtol=1e-6)


def test_preprocess_statistics_match_manual_computation() -> None:
    image = _fundus(32)
    out = preprocess(image, image_size=32, mean=MEAN, std=STD, crop_fov=False)
    expected = (image.astype(np.float32) / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), rtol=1e-5, atol=1e-6)
    red = out[0] * STD[0] + MEAN[0]
    assert red.min() >= 0.0 and red.max() <= 1.0


def test_preprocess_non_square_input_keeps_aspect() -> None:
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, 20:40] = 255  # a 20 x 20 white square in a wide black frame
    out = preprocess(wide, image_size=16, mean=(0, 0, 0), std=(1, 1, 1))
    assert out.min() > 0.99  # the crop found the square; nothing was stretched or padded


def test_preprocess_rejects_bad_input() -> None:
    with pytest.raises(VfmError, match=r"uint8"):
        preprocess(np.zeros((8, 8), np.uint8), image_size=8, mean=MEAN, std=STD)
    with pytest.raises(VfmError, match=r"uint8"):
        preprocess(np.zeros((8, 8, 3), np.float32), image_size=8, mean=MEAN, std=STD)
    with pytest.raises(VfmError, match=r"3 values"):
        preprocess(np.zeros((8, 8, 3), np.uint8), image_size=8, mean=(0.5,), std=STD)
    with pytest.raises(VfmError, match=r"std"):
        preprocess(np.zeros((8, 8, 3), np.uint8), image_size=8, mean=MEAN, std=(1, 0, 1))
    with pytest.raises(VfmError, match=r"image_size"):
        preprocess(np.zeros((8, 8, 3), np.uint8), image_size=0, mean=MEAN, std=STD)


def test_batch_of_mixed_sizes() -> None:
    images = [_fundus(64), _fundus(32), np.zeros((10, 30, 3), np.uint8)]
    batch = preprocess_batch(images, image_size=24, mean=MEAN, std=STD)
    assert batch.shape == (3, 3, 24, 24)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], preprocess(images[1], image_size=24, mean=MEAN, std=STD))


def test_batch_of_a_stacked_array() -> None:
    stacked, _ = generate(4, image_size=32)
    batch = preprocess_batch(stacked, image_size=16, mean=MEAN, std=STD, crop_fov=False)
    assert batch.shape == (4, 3, 16, 16)
    assert preprocess_batch([], image_size=16, mean=MEAN, std=STD).shape == (0, 3, 16, 16)


def test_batch_names_the_bad_item() -> None:
    with pytest.raises(VfmError, match=r"batch item 1"):
        preprocess_batch([_fundus(16), np.zeros((4, 4), np.uint8)], image_size=8, mean=MEAN, std=STD)
    with pytest.raises(VfmError, match=r"\[N, H, W, 3\]"):
        preprocess_batch(_fundus(16), image_size=8, mean=MEAN, std=STD)
