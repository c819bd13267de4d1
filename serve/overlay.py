"""Heat-map overlays for explanations (pure numpy + Pillow)."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Anchor colours of a perceptually ordered map (dark blue -> cyan -> yellow -> red).
_ANCHORS = np.array(
    [[0, 0, 96], [0, 80, 255], [0, 220, 220], [255, 230, 0], [255, 60, 0], [200, 0, 0]], dtype=np.float32
)


def colourise(heatmap: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 3]."""
    position = np.clip(heatmap, 0.0, 1.0) * (len(_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (position - low)[..., None]
    return (_ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac).astype(np.uint8)


def resize_image(image: np.ndarray, size: int = 256) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3] (bilinear), for display."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45, size: int = 256) -> np.ndarray:
    """Blend a heat-map over an image, both resized to ``size`` x ``size``.

    Args:
        image: uint8 [H, W, 3], the image the heat-map explains.
        heatmap: float [h, w] in [0, 1].

    Returns:
        uint8 [size, size, 3].
    """
    base = resize_image(image, size).astype(np.float32)
    heat = Image.fromarray((np.clip(heatmap, 0, 1) * 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    colour = colourise(np.asarray(heat, dtype=np.float32) / 255.0).astype(np.float32)
    return (base * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)
