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
from PIL import Image

from vfm.platform.errors import VfmError

_ROW_TOLERANCE = 0.01
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
    _check_image(image)
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
        image: uint8 [H, W, 3], RGB (decode files with ``vfm.serve.image_io.read_image``).
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
    _check_image(image)
    mean_arr, std_arr = _check_normalisation(image_size, mean, std)
    if crop_fov:
        image = crop_to_field_of_view(image)
    if image.shape[:2] != (image_size, image_size):
        image = np.asarray(Image.fromarray(image).resize((image_size, image_size), Image.Resampling.BILINEAR))
    scaled = image.astype(np.float32) / 255.0
    return np.ascontiguousarray(((scaled - mean_arr) / std_arr).transpose(2, 0, 1))


def preprocess_batch(
    images: np.ndarray | Sequence[np.ndarray],
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop_fov: bool = True,
) -> np.ndarray:
    """Preprocess a batch of photographs, which may differ in size.

    Args:
        images: uint8 [N, H, W, 3], or a sequence of N uint8 [H_i, W_i, 3] arrays.
        image_size: side S of the model input.
        mean: per-channel mean, 3 values on the [0, 1] scale.
        std: per-channel standard deviation, 3 positive values on the [0, 1] scale.
        crop_fov: crop the black border around each field of view first.

    Returns:
        float32 [N, 3, S, S].

    Raises:
        VfmError: a malformed image (named by its index), ``image_size`` or ``mean``/``std``.
    """
    _check_normalisation(image_size, mean, std)
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise VfmError(
            f"expected a batch uint8 [N, H, W, 3], got shape {images.shape}",
            where="retina.preprocess_batch",
            fix="stack the images along a new first axis, or pass a list of [H, W, 3] arrays",
        )
    batch = np.empty((len(images), 3, image_size, image_size), dtype=np.float32)
    for index, image in enumerate(images):
        try:
            batch[index] = preprocess(image, image_size=image_size, mean=mean, std=std, crop_fov=crop_fov)
        except VfmError as err:
            raise VfmError(err.what, where=f"batch item {index}", fix=err.fix) from err
    return batch


def _spanned(counts: np.ndarray, length: int) -> tuple[int, int] | None:
    """The first and one-past-last index whose bright-pixel count passes the tolerance.

    Args:
        counts: int [L], bright pixels per row (or column).
        length: the number of pixels in each row (or column).

    Returns:
        ``(start, stop)``, or None when no index passes.
    """
    minimum = max(1, int(np.ceil(_ROW_TOLERANCE * length)))
    hits = np.flatnonzero(counts >= minimum)
    if hits.size == 0:
        return None
    return int(hits[0]), int(hits[-1]) + 1


def _check_image(image: np.ndarray) -> None:
    """Require a non-empty uint8 [H, W, 3] array.

    Args:
        image: the candidate.

    Raises:
        VfmError: anything else.
    """
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
        or 0 in image.shape
    ):
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise VfmError(
            f"expected a uint8 [H, W, 3] RGB image, got {dtype} with shape {shape}",
            where="retina.preprocess",
            fix="decode images with vfm.serve.image_io.read_image, which always returns uint8 RGB",
        )


def _check_normalisation(image_size: int, mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validate the target size and the normalisation constants.

    Args:
        image_size: side S of the model input.
        mean: per-channel mean.
        std: per-channel standard deviation.

    Returns:
        mean: float32 [3]; std: float32 [3].

    Raises:
        VfmError: a non-positive size, not 3 values, or a non-positive std.
    """
    if int(image_size) != image_size or image_size < 1:
        raise VfmError(
            f"image_size must be a positive integer, got {image_size!r}",
            where="retina.preprocess",
            fix="set image_size, e.g. 224",
        )
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(-1)
    std_arr = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean_arr.shape != (3,) or std_arr.shape != (3,) or not np.all(std_arr > 0):
        raise VfmError(
            f"mean and std need 3 values each (std positive), got mean={list(mean)} std={list(std)}",
            where="retina.preprocess",
            fix="give one value per RGB channel on the [0, 1] scale, e.g. mean=[0.5, 0.5, 0.5] std=[0.25, 0.25, 0.25]",
        )
    return mean_arr, std_arr
