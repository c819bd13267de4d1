"""Generic image preprocessing (pure numpy + Pillow): check, resize, scale, normalise.

The default ``preprocess`` component of ``image-classification`` plugins, and the last
step of plugin-specific ones (retina crops the field of view first). It runs
identically in training, in the ONNX runtime and in the demo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from vfm.platform.errors import VfmError


def check_image(image: np.ndarray, where: str = "preprocess") -> None:
    """Require a non-empty uint8 [H, W, 3] array, else raise VfmError."""
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
            where=where,
            fix="decode images with vfm.platform.image_io.read_image, which always returns uint8 RGB",
        )


def check_normalisation(
    image_size: int, mean: Sequence[float], std: Sequence[float], where: str = "preprocess"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate the target size and per-channel statistics; returns mean, std as float32 [3]."""
    if int(image_size) != image_size or image_size < 1:
        raise VfmError(
            f"image_size must be a positive integer, got {image_size!r}", where=where, fix="set image_size, e.g. 224"
        )
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(-1)
    std_arr = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean_arr.shape != (3,) or std_arr.shape != (3,) or not np.all(std_arr > 0):
        raise VfmError(
            f"mean and std need 3 values each (std positive), got mean={list(mean)} std={list(std)}",
            where=where,
            fix="give one value per RGB channel on the [0, 1] scale, e.g. mean=[0.5, 0.5, 0.5] std=[0.25, 0.25, 0.25]",
        )
    return mean_arr, std_arr


def resize_normalise(
    image: np.ndarray, *, image_size: int, mean: Sequence[float], std: Sequence[float], where: str = "preprocess"
) -> np.ndarray:
    """Resize an RGB image and normalise it per channel.

    Args:
        image: uint8 [H, W, 3].
        image_size: output side S.
        mean, std: per-channel statistics on the [0, 1] scale.

    Returns:
        float32 [3, S, S]: ``(pixel / 255 - mean) / std`` after Pillow's antialiased bilinear resize.
    """
    check_image(image, where)
    mean_arr, std_arr = check_normalisation(image_size, mean, std, where)
    if image.shape[:2] != (image_size, image_size):
        image = np.asarray(Image.fromarray(image).resize((image_size, image_size), Image.Resampling.BILINEAR))
    scaled = image.astype(np.float32) / 255.0  # [S, S, 3]
    return np.ascontiguousarray(((scaled - mean_arr) / std_arr).transpose(2, 0, 1))  # [3, S, S]


def preprocess(
    image: np.ndarray, *, image_size: int, mean: Sequence[float], std: Sequence[float], **_plugin_specific: object
) -> np.ndarray:
    """Default preprocessing: uint8 [H, W, 3] -> float32 [3, S, S]; ignores plugin-specific keys."""
    return resize_normalise(image, image_size=image_size, mean=mean, std=std)
