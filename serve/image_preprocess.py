"""Generic image preprocessing (pure numpy + Pillow): resize, scale, normalise.

The default ``preprocess`` component of ``image-classification`` plugins. It runs
identically in training, in the ONNX runtime and in the demo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def resize_normalise(image: np.ndarray, *, image_size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Resize an RGB image and normalise it per channel.

    Args:
        image: uint8 [H, W, 3].
        image_size: output side S.
        mean, std: per-channel statistics in [0, 1] units.

    Returns:
        float32 [3, S, S].
    """
    resized = Image.fromarray(image).resize((image_size, image_size), Image.BILINEAR)
    scaled = np.asarray(resized, dtype=np.float32) / 255.0  # [S, S, 3]
    normalised = (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))  # [3, S, S]


def preprocess(image: np.ndarray, *, image_size: int, mean: Sequence[float], std: Sequence[float],
               **_plugin_specific: object) -> np.ndarray:
    """Default preprocessing: uint8 [H, W, 3] -> float32 [3, S, S]; ignores plugin-specific keys."""
    return resize_normalise(image, image_size=image_size, mean=mean, std=std)
