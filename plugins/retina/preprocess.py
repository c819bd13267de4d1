"""Fundus preprocessing shared by training, the ONNX runtime and the demo.

A fundus photograph is a bright disc on black. Cropping the black border first makes
photographs from different cameras (with more or less border, square or wide) look
alike to the model; padding back to a square keeps the eye round. The image is then
resized, scaled to [0, 1] and normalised per channel into CHW float32.

Pure numpy and Pillow, so the torch-free runtime computes exactly what training saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vfm.serve.image_preprocess import check_image, check_normalisation, resize_normalise

ROW_TOLERANCE = 0.01
"""A row or column belongs to the field of view when more than this fraction of it is
above the threshold (and at least one pixel), so isolated noisy border pixels are ignored."""


def crop_to_field_of_view(image: np.ndarray, threshold: int = 10) -> np.ndarray:
    """Crop the black border around the circular field of view, then pad to a square.

    Args:
        image: uint8 [H, W, 3], RGB.
        threshold: a pixel is part of the field of view when its brightest channel
            exceeds this value.

    Returns:
        uint8 [s, s, 3]: the bounding box of the field of view, padded with black on
        both sides of its shorter axis (centred). When no pixel exceeds the threshold,
        the image is returned unchanged (not padded).

    Raises:
        VfmError: the image is not uint8 [H, W, 3].
    """
    check_image(image, "retina.crop_to_field_of_view")
    bright = image.max(axis=-1) > threshold
    rows = _spanned(bright.sum(axis=1), image.shape[1])
    cols = _spanned(bright.sum(axis=0), image.shape[0])
    if rows is None or cols is None:
        return image
    cropped = image[rows[0] : rows[1], cols[0] : cols[1]]
    height, width = cropped.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = np.zeros((side, side, 3), dtype=np.uint8)
    square[top : top + height, left : left + width] = cropped
    return square


def preprocess(
    image: np.ndarray,
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop_fov: bool = True,
) -> np.ndarray:
    """Turn one photograph into a normalised model input.

    Args:
        image: uint8 [H, W, 3], RGB (decode files with ``vfm.platform.image_io.read_image``).
        image_size: side S of the model input.
        mean: per-channel mean, 3 values on the [0, 1] scale.
        std: per-channel standard deviation, 3 positive values on the [0, 1] scale.
        crop_fov: crop the black border around the field of view first.

    Returns:
        float32 [3, S, S]: ``(pixel / 255 - mean) / std`` after Pillow's antialiased
        bilinear resize to S x S.

    Raises:
        VfmError: a malformed image, ``image_size`` or ``mean``/``std``.
    """
    check_image(image, "retina.preprocess")
    check_normalisation(image_size, mean, std, "retina.preprocess")
    if crop_fov:
        image = crop_to_field_of_view(image)
    return resize_normalise(image, image_size=image_size, mean=mean, std=std, where="retina.preprocess")


def _spanned(counts: np.ndarray, length: int) -> tuple[int, int] | None:
    """The first and one-past-last index whose bright-pixel count passes the tolerance.

    Args:
        counts: int [L], bright pixels per row (or column).
        length: the number of pixels in each row (or column).

    Returns:
        ``(start, stop)``, or None when no index passes.
    """
    minimum = max(1, int(np.ceil(ROW_TOLERANCE * length)))
    hits = np.flatnonzero(counts >= minimum)
    if hits.size == 0:
        return None
    return int(hits[0]), int(hits[-1]) + 1
